/**
 * `shoal.v1.Secrets` and `shoal.v1.Configs`, and the secrets and configs a job registration brings. The agent that
 * takes the write (the leader) seals a secret before proposing it (secrets.ts), so only ciphertext reaches the Raft
 * log. No answer here carries a secret's value; a config's contents come back from `Configs.Get` alone.
 */
import { InvalidArgumentError, NotFoundError } from '../lib/errors.js';
import { LIMITS } from '../lib/limits.js';
import { shoal } from '../gen/proto.js';
import type { Job } from '../jobspec/types.js';
import {
  ConfigsCreate, ConfigsDelete, ConfigsGet, ConfigsList, SecretsCreate, SecretsDelete, SecretsList,
  type CallContext, type MethodDescriptor, type RpcServer,
} from '../rpc/index.js';
import type { ApplyResult, ClusterState, Command, FileObjectInput, FileObjectRecord } from '../state/index.js';
import type { RaftGroup } from './raft-group.js';
import type { SecretVault } from './secrets.js';

export interface ObjectRpcOptions {
  vault: SecretVault;
  leaderOnly: <Req, Res>(method: MethodDescriptor<Req, Res>, request: Req, ctx: CallContext, local: (raft: RaftGroup) => Promise<Res>) => Promise<Res>;
  /** Proposes a command on the leader; a refusal throws. */
  write: (raft: RaftGroup, command: Command, ctx: CallContext) => Promise<ApplyResult & { index?: number }>;
  /** Serves a read from the state (linearizable unless `stale`). */
  read: <Req extends { minIndex?: number | null; stale?: boolean | null }, Res>(method: MethodDescriptor<Req, Res>, req: Req, ctx: CallContext, local: (state: ClusterState) => Res) => Promise<Res>;
  state: () => ClusterState;
}

export function registerObjectRpc(rpc: RpcServer, o: ObjectRpcOptions): void {
  for (const kind of ['secret', 'config'] as const) {
    const m = kind === 'secret' ? { create: SecretsCreate, list: SecretsList, del: SecretsDelete } : { create: ConfigsCreate, list: ConfigsList, del: ConfigsDelete };
    rpc.register(m.create, (req, ctx) => o.leaderOnly(m.create, req, ctx, async (raft) => {
      const object = o.vault.seal(kind, req.name ?? '', Buffer.from(req.data ?? []), null);
      const before = o.state().object(kind, object.name);
      const result = await o.write(raft, { type: 'object.create', object }, ctx);
      return shoal.v1.CreateObjectResponse.fromObject({ index: result.index ?? 0, digest: object.digest, created: before === undefined });
    }));
    rpc.register(m.list, (req, ctx) => o.read(m.list, req, ctx, (state) => shoal.v1.ListObjectsResponse.fromObject({
      objects: state.objects(kind).map((r) => objectInfo(state, r)), index: state.index,
    })));
    rpc.register(m.del, (req, ctx) => o.leaderOnly(m.del, req, ctx, async (raft) => {
      const name = req.name ?? '';
      if (name === '') throw new InvalidArgumentError(`a ${kind} name is required`);
      const result = await o.write(raft, { type: 'object.delete', kind, name }, ctx);
      return shoal.v1.DeleteObjectResponse.fromObject({ index: result.index ?? 0 });
    }));
  }
  rpc.register(ConfigsGet, (req, ctx) => o.read(ConfigsGet, req, ctx, (state) => {
    const r = state.object('config', req.name ?? '');
    if (!r) throw new NotFoundError(`no config named "${req.name}"`, { name: req.name });
    return shoal.v1.GetConfigResponse.fromObject({ config: objectInfo(state, r), data: o.vault.open(r), index: state.index });
  }));
}

function objectInfo(state: ClusterState, r: FileObjectRecord): shoal.v1.IObjectInfo {
  return { name: r.name, digest: r.digest, sizeBytes: r.sizeBytes, job: r.job ?? '', usedBy: state.jobsUsingObject(r.kind, r.name), createIndex: r.createIndex };
}

/**
 * Seals the contents a job registration brings. Each must be one of the job's own secrets (configs), by cluster
 * name; the state machine then checks that every one the job uses exists or comes with it.
 */
export function sealJobObjects(job: Job, req: shoal.v1.IRegisterJobRequest, vault: SecretVault): FileObjectInput[] {
  const out: FileObjectInput[] = [];
  let bytes = 0;
  for (const kind of ['secret', 'config'] as const) {
    const given = (kind === 'secret' ? req.secrets : req.configs) ?? [];
    const own = ((kind === 'secret' ? job.secrets : job.configs) ?? []).filter((d) => !d.external).map((d) => d.clusterName);
    const seen = new Set<string>();
    for (const [i, c] of given.entries()) {
      const name = c.name ?? '';
      const where = `${kind}s[${i}]`;
      if (!own.includes(name)) {
        throw new InvalidArgumentError(`${where}: "${name}" is not one of job "${job.name}"'s own ${kind}s (${own.length > 0 ? own.join(', ') : 'it declares none that are not external'})`);
      }
      if (seen.has(name)) throw new InvalidArgumentError(`${where}: "${name}" is given twice`);
      seen.add(name);
      const data = Buffer.from(c.data ?? []);
      bytes += data.length;
      if (bytes > LIMITS.jobMaxFileObjectBytes) throw new InvalidArgumentError(`the job's secrets and configs have more than ${LIMITS.jobMaxFileObjectBytes} bytes together (jobMaxFileObjectBytes)`);
      out.push(vault.seal(kind, name, data, job.name));
    }
  }
  return out;
}
