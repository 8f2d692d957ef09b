/**
 * `shoal.v1.Services`: the catalog as this agent holds it (src/state/catalog.ts), with its own listeners for each
 * service. Every agent answers from its own copy, servers and clients alike; a caller that passes the index of its
 * last answer as `wait_index` is answered when the catalog next changes (a blocking query, as Consul's and Nomad's).
 */
import { NotFoundError } from '../lib/errors.js';
import { LIMITS } from '../lib/limits.js';
import { shoal } from '../gen/proto.js';
import { ServicesGet, ServicesList, type CallContext, type RpcServer } from '../rpc/index.js';
import type { CatalogService, CatalogView } from '../state/index.js';
import type { ListenerStatus } from '../mesh/index.js';

export interface ServicesRpcOptions {
  catalog: () => CatalogView | undefined;
  listeners: () => ListenerStatus[];
  nodeName: (nodeId: string) => string;
}

export class ServicesRpc {
  readonly #o: ServicesRpcOptions;
  readonly #waiters = new Set<() => void>();

  constructor(options: ServicesRpcOptions) {
    this.#o = options;
  }

  register(rpc: RpcServer): void {
    rpc.register(ServicesList, async (req, ctx) => {
      const view = await this.#wait(Number(req.waitIndex ?? 0), req.waitMs ?? 0, ctx);
      const services = (view?.catalog() ?? []).filter((e) => !req.job || e.job === req.job).map((e) => this.#info(e));
      return shoal.v1.ListServicesResponse.fromObject({ services, index: view?.catalogIndex ?? 0 });
    });
    rpc.register(ServicesGet, async (req, ctx) => {
      const view = await this.#wait(Number(req.waitIndex ?? 0), req.waitMs ?? 0, ctx);
      const entry = view?.catalogService(`${req.job}/${req.service}`);
      if (!entry) {
        const jobs = view?.catalog().filter((e) => e.job === req.job).map((e) => e.service) ?? [];
        throw new NotFoundError(jobs.length > 0
          ? `job "${req.job}" has no service "${req.service}" (it has ${jobs.join(', ')})`
          : `no running job named "${req.job}" in this agent's catalog`, { job: req.job, service: req.service });
      }
      return shoal.v1.GetServiceResponse.fromObject({ service: this.#info(entry), index: view!.catalogIndex });
    });
  }

  /** The catalog may have changed: blocking queries look again. */
  changed(): void {
    for (const w of [...this.#waiters]) w();
  }

  /** Waits until the catalog's index passes `index` or `waitMs` (capped) is up; returns the view then. */
  async #wait(index: number, waitMs: number, ctx: CallContext): Promise<CatalogView | undefined> {
    const limit = Math.max(0, Math.min(waitMs, LIMITS.sliceWatchMaxWaitMs, ctx.timeoutMs - 1_000));
    if (limit === 0 || index === 0 || (this.#o.catalog()?.catalogIndex ?? 0) > index) return this.#o.catalog();
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        ctx.signal.removeEventListener('abort', done);
        this.#waiters.delete(check);
        resolve();
      };
      const check = (): void => {
        if ((this.#o.catalog()?.catalogIndex ?? 0) > index) done();
      };
      const timer = setTimeout(done, limit);
      ctx.signal.addEventListener('abort', done, { once: true });
      this.#waiters.add(check);
    });
    return this.#o.catalog();
  }

  #info(e: CatalogService): shoal.v1.IServiceInfo {
    return {
      job: e.job, service: e.service, endpointMode: e.endpointMode, targetPorts: e.targetPorts, modifyIndex: e.modifyIndex,
      networks: e.networks.map((n) => ({ network: n.network, aliases: n.aliases })),
      ingress: e.ingress.map((p) => ({ published: p.published, target: p.target })),
      healthChecked: e.healthChecked,
      endpoints: e.endpoints.map((x) => ({
        allocId: x.allocId, nodeId: x.nodeId, nodeName: this.#o.nodeName(x.nodeId),
        ports: Object.fromEntries(Object.entries(x.ports).map(([t, p]) => [Number(t), p])),
      })),
      listeners: this.#o.listeners().filter((l) => l.service === e.key).map((l) => ({
        kind: l.kind, targetPort: l.targetPort, address: l.address, connections: l.connections, error: l.error,
      })),
    };
  }
}
