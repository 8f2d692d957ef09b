import t from 'tap';
import { shoal } from '../../src/gen/proto.js';
import { LIMITS } from '../../src/lib/limits.js';
import { encodedSizeBytes } from '../../src/membership/meta.js';

const GossipMessage = shoal.v1.GossipMessage;

t.test('gossip.proto: a ping with rumours round-trips, and is smaller than the JSON measure the core uses', async (t) => {
  const meta = { name: 'n1', agentVersion: '0.1.0', addresses: ['10.0.0.1:7645'], labels: { zone: 'a' }, cpuMillicores: 4000, memoryBytes: 8 * 2 ** 30, diskFreeBytes: 2 ** 40, drivers: ['docker'], voter: true, leader: false };
  const message = {
    ping: { seq: 42, target: 'n2' },
    rumours: [
      { kind: shoal.v1.GossipStatus.GOSSIP_STATUS_ALIVE, node: 'n1', incarnation: 7, meta },
      { kind: shoal.v1.GossipStatus.GOSSIP_STATUS_SUSPECT, node: 'n3', incarnation: 2, accuser: 'n1' },
    ],
  };
  t.equal(GossipMessage.verify(message), null);
  const bytes = GossipMessage.encode(GossipMessage.create(message)).finish();
  const back = GossipMessage.toObject(GossipMessage.decode(bytes), { longs: Number });
  t.equal(back['ping'].seq, 42);
  t.equal(back['rumours'].length, 2);
  t.equal(back['rumours'][0].meta.labels.zone, 'a');
  t.equal(back['rumours'][0].meta.diskFreeBytes, 2 ** 40);
  t.equal(back['rumours'][1].accuser, 'n1');
  t.ok(bytes.length < encodedSizeBytes(message), `${bytes.length} protobuf bytes < ${encodedSizeBytes(message)} JSON bytes`);
  t.ok(bytes.length < LIMITS.membershipMaxMessageBytes);
});

t.test('gossip.proto: garbage does not decode into a message silently', async (t) => {
  t.throws(() => GossipMessage.decode(Uint8Array.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])));
});
