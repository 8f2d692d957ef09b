/**
 * `ShoalClient`: the typed client for the agent RPC, used by the CLI and by any program that drives Shoal.
 * Every call has a deadline (the client's default, or the call's own), sent to the agent as `x-shoal-timeout-ms`
 * so both sides give up at the same moment; errors are typed: `RemoteError` (the agent said no, with its code),
 * `AgentUnreachableError`, `DeadlineExceededError`.
 *
 * It speaks binary protobuf by default (smaller, and no .proto files to parse), or proto3 JSON with
 * `encoding: 'json'`, through the same mapping as the server (json.ts): what a program in another language sends.
 */
import { InvalidArgumentError, ShoalError } from '../lib/errors.js';
import { LIMITS } from '../lib/limits.js';
import type { shoal } from '../gen/proto.js';
import { AgentUnreachableError, DeadlineExceededError, RemoteError } from './errors.js';
import { loadProtoJson } from './json.js';
import {
  NetworksCreate, NetworksDelete, NetworksList, SecretsCreate, SecretsList, SecretsDelete, ConfigsCreate, ConfigsList, ConfigsDelete, ConfigsGet, StateGet, StatePut, StateDelete, StateScan, StateTxn, StateEnqueue, StateDequeue, StateAck, PartitionsList, PartitionsPlacement, PartitionsTransfer, ServicesGet, ServicesList, AgentSelf, AllocationsGet, AllocationsList, AllocationsLogs, JobsGet, JobsList, JobsPlan, JobsRegister, JobsScale, JobsStop, MembersList,
  NodesDrain, NodesEligibility, NodesList, OperatorRaftBarrier, OperatorRaftState, RpcErrorType, type MethodDescriptor,
} from './methods.js';

export const DEFAULT_API_ADDRESS = 'http://127.0.0.1:7646';

export interface ShoalClientOptions {
  /** A URL such as http://127.0.0.1:7646, or a bare host:port. Default: SHOAL_ADDR, else http://127.0.0.1:7646. */
  address?: string;
  /** Bearer token for a remote agent. Default: SHOAL_TOKEN. */
  token?: string;
  /** Default deadline of every call. */
  timeoutMs?: number;
  /** How calls are encoded: 'proto' (application/x-protobuf, the default) or 'json' (proto3 JSON). */
  encoding?: 'proto' | 'json';
}

export interface CallOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Accepts "http://h:p", "https://h:p", "h:p" or ":p"; returns a base URL without a trailing slash. */
export function parseApiAddress(address: string): string {
  const text = address.trim();
  if (text === '') throw new InvalidArgumentError('the agent address is empty (expected a URL such as http://127.0.0.1:7646, or host:port)');
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text.startsWith(':') ? `127.0.0.1${text}` : text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch (_bad) {
    throw new InvalidArgumentError(`"${address}" is not a valid agent address (expected a URL such as http://127.0.0.1:7646, or host:port)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InvalidArgumentError(`agent address "${address}" must use http or https`);
  if (!url.port && !/^[a-z]+:\/\//i.test(text)) throw new InvalidArgumentError(`agent address "${address}" has no port`);
  return `${url.protocol}//${url.host}`;
}

export class ShoalClient {
  readonly baseUrl: string;
  readonly #token: string | undefined;
  readonly #timeoutMs: number;
  readonly #encoding: 'proto' | 'json';

  constructor(options: ShoalClientOptions = {}) {
    this.baseUrl = parseApiAddress(options.address ?? process.env['SHOAL_ADDR'] ?? DEFAULT_API_ADDRESS);
    this.#token = options.token ?? process.env['SHOAL_TOKEN'];
    this.#timeoutMs = Math.min(options.timeoutMs ?? LIMITS.defaultRpcTimeoutMs, LIMITS.maxRpcTimeoutMs);
    this.#encoding = options.encoding ?? 'proto';
  }

  readonly agent = {
    self: (options?: CallOptions): Promise<shoal.v1.SelfResponse> => this.call(AgentSelf, {}, options),
  };

  readonly operator = {
    raftState: (options?: CallOptions): Promise<shoal.v1.RaftStateResponse> => this.call(OperatorRaftState, {}, options),
    raftBarrier: (options?: CallOptions): Promise<shoal.v1.RaftBarrierResponse> => this.call(OperatorRaftBarrier, {}, options),
  };

  readonly members = {
    list: (request: shoal.v1.IListMembersRequest = {}, options?: CallOptions): Promise<shoal.v1.ListMembersResponse> => this.call(MembersList, request, options),
  };

  readonly jobs = {
    register: (request: shoal.v1.IRegisterJobRequest, options?: CallOptions): Promise<shoal.v1.RegisterJobResponse> => this.call(JobsRegister, request, options),
    plan: (request: shoal.v1.IPlanJobRequest, options?: CallOptions): Promise<shoal.v1.PlanJobResponse> => this.call(JobsPlan, request, options),
    get: (request: shoal.v1.IGetJobRequest, options?: CallOptions): Promise<shoal.v1.GetJobResponse> => this.call(JobsGet, request, options),
    list: (request: shoal.v1.IListJobsRequest = {}, options?: CallOptions): Promise<shoal.v1.ListJobsResponse> => this.call(JobsList, request, options),
    stop: (request: shoal.v1.IStopJobRequest, options?: CallOptions): Promise<shoal.v1.StopJobResponse> => this.call(JobsStop, request, options),
    scale: (request: shoal.v1.IScaleJobRequest, options?: CallOptions): Promise<shoal.v1.ScaleJobResponse> => this.call(JobsScale, request, options),
  };

  readonly allocations = {
    list: (request: shoal.v1.IListAllocationsRequest = {}, options?: CallOptions): Promise<shoal.v1.ListAllocationsResponse> => this.call(AllocationsList, request, options),
    get: (request: shoal.v1.IGetAllocationRequest, options?: CallOptions): Promise<shoal.v1.GetAllocationResponse> => this.call(AllocationsGet, request, options),
    logs: (request: shoal.v1.IAllocationLogsRequest, options?: CallOptions): Promise<shoal.v1.AllocationLogsResponse> => this.call(AllocationsLogs, request, options),
  };

  readonly nodes = {
    list: (request: shoal.v1.IListNodesRequest = {}, options?: CallOptions): Promise<shoal.v1.ListNodesResponse> => this.call(NodesList, request, options),
    drain: (request: shoal.v1.IDrainNodeRequest, options?: CallOptions): Promise<shoal.v1.DrainNodeResponse> => this.call(NodesDrain, request, options),
    eligibility: (request: shoal.v1.INodeEligibilityRequest, options?: CallOptions): Promise<shoal.v1.NodeEligibilityResponse> => this.call(NodesEligibility, request, options),
  };

  readonly networks = {
    create: (request: shoal.v1.ICreateNetworkRequest, options?: CallOptions): Promise<shoal.v1.CreateNetworkResponse> => this.call(NetworksCreate, request, options),
    list: (request: shoal.v1.IListNetworksRequest = {}, options?: CallOptions): Promise<shoal.v1.ListNetworksResponse> => this.call(NetworksList, request, options),
    delete: (request: shoal.v1.IDeleteNetworkRequest, options?: CallOptions): Promise<shoal.v1.DeleteNetworkResponse> => this.call(NetworksDelete, request, options),
  };

  readonly secrets = {
    create: (request: shoal.v1.ICreateObjectRequest, options?: CallOptions): Promise<shoal.v1.CreateObjectResponse> => this.call(SecretsCreate, request, options),
    list: (request: shoal.v1.IListObjectsRequest = {}, options?: CallOptions): Promise<shoal.v1.ListObjectsResponse> => this.call(SecretsList, request, options),
    delete: (request: shoal.v1.IDeleteObjectRequest, options?: CallOptions): Promise<shoal.v1.DeleteObjectResponse> => this.call(SecretsDelete, request, options),
  };

  readonly configs = {
    create: (request: shoal.v1.ICreateObjectRequest, options?: CallOptions): Promise<shoal.v1.CreateObjectResponse> => this.call(ConfigsCreate, request, options),
    list: (request: shoal.v1.IListObjectsRequest = {}, options?: CallOptions): Promise<shoal.v1.ListObjectsResponse> => this.call(ConfigsList, request, options),
    delete: (request: shoal.v1.IDeleteObjectRequest, options?: CallOptions): Promise<shoal.v1.DeleteObjectResponse> => this.call(ConfigsDelete, request, options),
    get: (request: shoal.v1.IGetConfigRequest, options?: CallOptions): Promise<shoal.v1.GetConfigResponse> => this.call(ConfigsGet, request, options),
  };

  /** Reliable collections of stateful services (any agent routes a call to the key's partition). */
  readonly state = {
    get: (request: shoal.v1.IStateRequest, options?: CallOptions): Promise<shoal.v1.StateGetResponse> => this.call(StateGet, request, options),
    put: (request: shoal.v1.IStateRequest, options?: CallOptions): Promise<shoal.v1.StateWriteResponse> => this.call(StatePut, request, options),
    delete: (request: shoal.v1.IStateRequest, options?: CallOptions): Promise<shoal.v1.StateWriteResponse> => this.call(StateDelete, request, options),
    scan: (request: shoal.v1.IStateScanRequest, options?: CallOptions): Promise<shoal.v1.StateScanResponse> => this.call(StateScan, request, options),
    txn: (request: shoal.v1.IStateTxnRequest, options?: CallOptions): Promise<shoal.v1.StateTxnResponse> => this.call(StateTxn, request, options),
    enqueue: (request: shoal.v1.IStateRequest, options?: CallOptions): Promise<shoal.v1.StateWriteResponse> => this.call(StateEnqueue, request, options),
    dequeue: (request: shoal.v1.IStateRequest, options?: CallOptions): Promise<shoal.v1.StateDequeueResponse> => this.call(StateDequeue, request, options),
    ack: (request: shoal.v1.IStateRequest, options?: CallOptions): Promise<shoal.v1.StateWriteResponse> => this.call(StateAck, request, options),
  };

  readonly partitions = {
    list: (request: shoal.v1.IListPartitionsRequest = {}, options?: CallOptions): Promise<shoal.v1.ListPartitionsResponse> => this.call(PartitionsList, request, options),
    placement: (request: shoal.v1.IPlacementRequest, options?: CallOptions): Promise<shoal.v1.PlacementResponse> => this.call(PartitionsPlacement, request, options),
    transfer: (request: shoal.v1.ITransferPrimaryRequest, options?: CallOptions): Promise<shoal.v1.TransferPrimaryResponse> => this.call(PartitionsTransfer, request, options),
  };

  readonly services = {
    list: (request: shoal.v1.IListServicesRequest = {}, options?: CallOptions): Promise<shoal.v1.ListServicesResponse> => this.call(ServicesList, request, options),
    get: (request: shoal.v1.IGetServiceRequest, options?: CallOptions): Promise<shoal.v1.GetServiceResponse> => this.call(ServicesGet, request, options),
  };

  /** GET /v1/health: resolves with the agent's answer, or throws AgentUnreachableError. */
  async health(options: CallOptions = {}): Promise<Record<string, unknown>> {
    const res = await this.#fetch('/v1/health', { method: 'GET' }, options, 'GET /v1/health');
    const text = await res.text();
    if (!res.ok) throw new RemoteError(res.headers.get('x-shoal-error-code') ?? 'ERR_UNAVAILABLE', `health check failed with HTTP ${res.status}: ${text.slice(0, 200)}`, res.status);
    return JSON.parse(text) as Record<string, unknown>;
  }

  /** Calls any method by its descriptor. */
  async call<Req, Res>(method: MethodDescriptor<Req, Res>, request: object, options: CallOptions = {}): Promise<Res> {
    const what = `${method.service}/${method.method}`;
    const message = method.requestType.fromObject(request as Record<string, unknown>);
    const json = this.#encoding === 'json' ? await loadProtoJson() : undefined;
    const body = json ? JSON.stringify(json.write(method.requestType, message)) : method.requestType.encode(message).finish();
    const timeoutMs = Math.min(options.timeoutMs ?? this.#timeoutMs, LIMITS.maxRpcTimeoutMs);
    const res = await this.#fetch(`/rpc/${method.service}/${method.method}`, {
      method: 'POST',
      body,
      headers: { 'content-type': json ? 'application/json' : 'application/x-protobuf', 'x-shoal-timeout-ms': String(timeoutMs) },
    }, { ...options, timeoutMs }, what);
    const bytes = await readLimited(res, LIMITS.maxRpcResponseBytes, what);
    const isJson = (res.headers.get('content-type') ?? '').includes('json');
    if (!res.ok) {
      let code = res.headers.get('x-shoal-error-code') ?? 'ERR_INTERNAL';
      let text = `HTTP ${res.status}`;
      let details: Record<string, string> = {};
      try {
        const decoded = isJson
          ? (JSON.parse(Buffer.from(bytes).toString('utf8')) as { code: string; message: string; details?: Record<string, string> })
          : RpcErrorType.decode(bytes);
        code = decoded.code || code;
        text = decoded.message || text;
        details = { ...(decoded.details ?? {}) };
      } catch (_undecodable) {
        text = `${what} failed with HTTP ${res.status} and an undecodable error body`;
      }
      throw new RemoteError(code, text, res.status, details);
    }
    try {
      // An agent newer than this client may answer fields it does not know: skipped, as binary protobuf does.
      return json && isJson
        ? json.read(method.responseType, JSON.parse(Buffer.from(bytes).toString('utf8')), { ignoreUnknownFields: true })
        : method.responseType.decode(bytes);
    } catch (err) {
      throw new ShoalError('ERR_BAD_RESPONSE', `${what}: the agent's response is not a valid ${method.service}/${method.method} response (${err instanceof Error ? err.message : String(err)})`);
    }
  }

  async #fetch(path: string, init: RequestInit, options: CallOptions, what: string): Promise<Response> {
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    const deadline = AbortSignal.timeout(timeoutMs);
    const signal = options.signal ? AbortSignal.any([deadline, options.signal]) : deadline;
    const headers = new Headers(init.headers);
    if (this.#token) headers.set('authorization', `Bearer ${this.#token}`);
    const url = `${this.baseUrl}${path}`;
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          return await fetch(url, { ...init, headers, signal });
        } catch (err) {
          // A pooled keep-alive connection the agent closed just as it was reused fails before the request is read
          // (undici reports it as a socket error, or as EPIPE/ECONNRESET when the body was being written). Every
          // Shoal call is safe to send again (writes are idempotent). After a long stall of this process (a busy
          // loop, a suspended laptop) several pooled connections can be stale at once, and their close events not
          // yet read: let the event loop read them, then try again, a bounded number of times.
          if (!RETRIABLE_SOCKET_CODES.has((err as { cause?: { code?: string } }).cause?.code ?? '') || deadline.aborted || attempt >= LIMITS.rpcStaleConnectionAttempts) throw err;
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
    } catch (err) {
      if (deadline.aborted) throw new DeadlineExceededError(`${what} to ${this.baseUrl}`, timeoutMs);
      if (options.signal?.aborted) throw new ShoalError('ERR_CANCELLED', `${what} was cancelled`);
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new AgentUnreachableError(this.baseUrl, cause?.code ?? cause?.message ?? (err instanceof Error ? err.message : String(err)), err);
    }
  }
}

const RETRIABLE_SOCKET_CODES = new Set(['UND_ERR_SOCKET', 'EPIPE', 'ECONNRESET']);

async function readLimited(res: Response, maxBytes: number, what: string): Promise<Uint8Array> {
  const declared = Number(res.headers.get('content-length') ?? '0');
  if (declared > maxBytes) throw new ShoalError('ERR_RESPONSE_TOO_LARGE', `${what}: response of ${declared} bytes exceeds the limit of ${maxBytes} bytes`);
  const buffer = new Uint8Array(await res.arrayBuffer());
  if (buffer.length > maxBytes) throw new ShoalError('ERR_RESPONSE_TOO_LARGE', `${what}: response exceeds the limit of ${maxBytes} bytes`);
  return buffer;
}
