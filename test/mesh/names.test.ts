/** What a name means to a task (src/mesh/names.ts), on a catalog built by a real ClusterState. */
import t from 'tap';
import { ClusterState } from '../../src/state/cluster-state.js';
import { parseJobFile } from '../../src/jobspec/parse.js';
import { resolveName, sharedVip } from '../../src/mesh/names.js';

const state = new ClusterState();
let index = 0;
const apply = (c: Parameters<ClusterState['apply']>[1]) => {
  const r = state.apply(++index, c);
  if (!r.ok) throw new Error(r.message);
};
apply({ type: 'network.create', name: 'backbone', internal: false });
apply({ type: 'job.register', job: parseJobFile(`
name: shop
networks:
  front: {}
  back: {}
  shared: { external: true, name: backbone }
services:
  web: { x-shoal: { driver: process }, command: w, ports: ["8080:80"], networks: [front] }
  api: { x-shoal: { driver: process }, command: a, expose: [3000, 3001], networks: { front: { aliases: [backend] }, back: {}, shared: { aliases: [shop-api] } } }
  db: { x-shoal: { driver: process }, command: d, expose: [6379], networks: [back] }
  cron: { x-shoal: { driver: process }, command: c, networks: [back] }
`, { file: 'shop.yaml' }).job });
apply({ type: 'job.register', job: parseJobFile(`
name: billing
networks:
  shared: { external: true, name: backbone }
services:
  worker: { x-shoal: { driver: process }, command: w, expose: [9000], networks: [shared] }
`, { file: 'billing.yaml' }).job });
const catalog = state.catalog();
const svc = (key: string) => state.catalogService(key)!;

t.test('names within a job, by service name and alias, on shared networks only', async (t) => {
  const web = svc('shop/web');
  const api = resolveName('api', web, catalog);
  t.match(api, { kind: 'service', service: { key: 'shop/api' } });
  t.equal(api.kind === 'service' && api.vip, sharedVip(web, svc('shop/api')), 'the address on the network they share (front)');
  t.match(resolveName('backend', web, catalog), { kind: 'service', service: { key: 'shop/api' } }, 'an alias on that network');
  t.match(resolveName('db', web, catalog), { kind: 'forward' }, 'a name web cannot reach is not ours to answer');
  t.match(resolveName('db.shop.shoal', web, catalog), { kind: 'nxdomain' }, 'but inside the zone it is no such name');
  t.match(resolveName('db', svc('shop/api'), catalog), { kind: 'service', service: { key: 'shop/db' } }, 'api is on back with db');
  t.match(resolveName('cron', svc('shop/api'), catalog), { kind: 'nxdomain' }, 'a service with no port has no address');
});

t.test('names across jobs: <service>.<job>, and aliases on a shared network', async (t) => {
  const worker = svc('billing/worker');
  t.match(resolveName('api.shop', worker, catalog), { kind: 'service', service: { key: 'shop/api' } });
  t.match(resolveName('api.shop.shoal.', worker, catalog), { kind: 'service', service: { key: 'shop/api' } });
  t.match(resolveName('shop-api', worker, catalog), { kind: 'service', service: { key: 'shop/api' } }, 'an alias on the shared network');
  t.match(resolveName('api', worker, catalog), { kind: 'forward' }, 'a bare name is the own job\'s (or an alias)');
  t.match(resolveName('web.shop', worker, catalog), { kind: 'nxdomain' }, 'web is not on the shared network');
  t.match(resolveName('www.example', worker, catalog), { kind: 'forward' }, 'two labels that are no job: the outside world\'s');
  t.match(resolveName('a.b.c.example.org', worker, catalog), { kind: 'forward' });
  t.match(resolveName('shoal', worker, catalog), { kind: 'nxdomain' });
  const viaShared = resolveName('api.shop', worker, catalog);
  t.equal(viaShared.kind === 'service' && viaShared.vip, svc('shop/api').networks.find((n) => n.network === 'backbone')!.vip, 'the address on the shared network');
});

t.test('tasks.<name> asks for the tasks; a dnsrr service always answers with them', async (t) => {
  const web = svc('shop/web');
  t.match(resolveName('api', web, catalog), { kind: 'service', tasks: false });
  t.match(resolveName('tasks.api', web, catalog), { kind: 'service', service: { key: 'shop/api' }, tasks: true });
  t.match(resolveName('tasks.backend', web, catalog), { kind: 'service', service: { key: 'shop/api' }, tasks: true }, 'through an alias');
  t.match(resolveName('tasks.api.shop.shoal', web, catalog), { kind: 'service', tasks: true });
  t.match(resolveName('tasks.db.shop.shoal', web, catalog), { kind: 'nxdomain' }, 'no more reach than the name itself');
  t.match(resolveName('tasks.example', web, catalog), { kind: 'forward' }, 'not a service, not a job: the outside world\'s');
  apply({ type: 'job.register', job: parseJobFile(`
name: cache
services:
  redis: { x-shoal: { driver: process }, command: r, expose: [6379], deploy: { endpoint_mode: dnsrr } }
  app: { x-shoal: { driver: process }, command: a }
`, { file: 'cache.yaml' }).job });
  const now = state.catalog();
  t.match(resolveName('redis', state.catalogService('cache/app')!, now), { kind: 'service', service: { key: 'cache/redis' }, tasks: true }, 'dnsrr: the name answers with the tasks');
});
