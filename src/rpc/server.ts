/**
 * The agent's RPC server: one HTTP listener serving
 *   GET  /v1/health                       -> 200 {status, name, id} while the agent is up
 *   POST /rpc/<package>.<Service>/<Method> -> protobuf (application/x-protobuf) or proto3 JSON (application/json,
 *                                            as json.ts reads and writes it)
 *
 * Every request is bounded: body size (checked while it streams in), header time, connections, and a deadline
 * (the caller's `x-shoal-timeout-ms`, capped) after which the call fails with ERR_DEADLINE_EXCEEDED instead of
 * hanging. Requests from outside loopback need `Authorization: Bearer <token>`; without a configured token remote
 * access is refused outright.
 */
import http from 'node:http';
import { timingSafeEqual, createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { LIMITS } from '../lib/limits.js';
import { InvalidArgumentError, ShoalError, describeError } from '../lib/errors.js';
import type { Logger } from '../log/logger.js';
import { silentLogger } from '../log/logger.js';
import { httpStatusFor } from './errors.js';
import { loadProtoJson, type ProtoJson } from './json.js';
import { RpcErrorType, type MethodDescriptor } from './methods.js';

export interface CallContext {
  /** Aborted when the call's deadline passes or the client goes away. */
  signal: AbortSignal;
  timeoutMs: number;
  remoteAddress: string;
  /** Set when another agent forwarded this call over the peer network (it must not be forwarded again). */
  forwardedFrom?: string;
}

export type Handler<Req, Res> = (request: Req, ctx: CallContext) => Promise<Res> | Res;

export interface RpcServerOptions {
  host: string;
  port: number;
  /** Bearer token for non-loopback callers; undefined refuses them. */
  token?: string;
  logger?: Logger;
  /** What /v1/health reports (name, id...). */
  health?: () => Record<string, unknown>;
}

type Encoding = 'proto' | 'json';

interface Registered {
  descriptor: MethodDescriptor<unknown, unknown>;
  handler: Handler<unknown, unknown>;
}

class HttpError extends ShoalError {}

export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}

export class RpcServer {
  readonly #options: RpcServerOptions;
  readonly #log: Logger;
  readonly #methods = new Map<string, Registered>();
  readonly #tokenDigest: Buffer | undefined;
  #server: http.Server | undefined;
  #address: AddressInfo | undefined;

  constructor(options: RpcServerOptions) {
    this.#options = options;
    this.#log = (options.logger ?? silentLogger()).child({ component: 'rpc' });
    this.#tokenDigest = options.token === undefined ? undefined : digest(options.token);
  }

  register<Req, Res>(descriptor: MethodDescriptor<Req, Res>, handler: Handler<Req, Res>): void {
    const path = `/rpc/${descriptor.service}/${descriptor.method}`;
    if (this.#methods.has(path)) throw new ShoalError('ERR_DUPLICATE_METHOD', `RPC method ${path} is registered twice`);
    this.#methods.set(path, { descriptor: descriptor as MethodDescriptor<unknown, unknown>, handler: handler as Handler<unknown, unknown> });
  }

  /** Listens; resolves with the bound address (port 0 picks a free one). */
  async start(): Promise<AddressInfo> {
    if (this.#server) return this.#address!;
    const server = http.createServer({ requestTimeout: LIMITS.maxRpcTimeoutMs + 5_000, headersTimeout: LIMITS.rpcHeadersTimeoutMs }, (req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        this.#log.error({ err: describeError(err) }, 'rpc: unhandled error while answering');
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    });
    server.maxConnections = LIMITS.maxRpcConnections;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(new ShoalError('ERR_API_LISTEN', `cannot listen on ${this.#options.host}:${this.#options.port} for the API: ${err.message}`, { host: this.#options.host, port: this.#options.port }));
      server.once('error', onError);
      server.listen(this.#options.port, this.#options.host, () => {
        server.off('error', onError);
        resolve();
      });
    });
    this.#server = server;
    this.#address = server.address() as AddressInfo;
    this.#log.info({ address: `${this.#address.address}:${this.#address.port}` }, 'API listening');
    return this.#address;
  }

  /** Stops listening and closes every connection. Idempotent. */
  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const remote = req.socket.remoteAddress ?? '';
    const url = new URL(req.url ?? '/', 'http://agent');
    let encoding: Encoding = (req.headers['content-type'] ?? '').includes('json') ? 'json' : 'proto';
    try {
      this.#authorize(req, remote);
      if (url.pathname === '/v1/health') {
        if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError('ERR_METHOD_NOT_ALLOWED', 'use GET /v1/health');
        const body = JSON.stringify({ status: 'ok', ...(this.#options.health?.() ?? {}) });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(body);
        return;
      }
      const registered = this.#methods.get(url.pathname);
      if (!registered) {
        encoding = 'json';
        throw new HttpError('ERR_UNKNOWN_METHOD', `no RPC method at ${url.pathname}; methods are served at POST /rpc/<package>.<Service>/<Method>`, { path: url.pathname });
      }
      if (req.method !== 'POST') throw new HttpError('ERR_METHOD_NOT_ALLOWED', `${url.pathname} takes POST, not ${req.method}`);
      encoding = requestEncoding(req.headers['content-type']);
      const body = await readBody(req, LIMITS.maxRpcRequestBytes);
      const { descriptor, handler } = registered;
      const where = `${descriptor.service}/${descriptor.method}`;
      const json = encoding === 'json' ? await loadProtoJson() : undefined;
      const request = json ? decodeJsonRequest(json, descriptor, body, where) : decodeRequest(descriptor, body, where);
      const timeoutMs = parseTimeout(req.headers['x-shoal-timeout-ms']);
      const response = await runWithDeadline(handler, request, timeoutMs, remote, req, where);
      const payload = json
        ? Buffer.from(JSON.stringify(json.write(descriptor.responseType, response)))
        : Buffer.from(descriptor.responseType.encode(response).finish());
      res.writeHead(200, { 'content-type': encoding === 'json' ? 'application/json' : 'application/x-protobuf', 'content-length': payload.length });
      res.end(payload);
    } catch (err) {
      this.#sendError(res, err, encoding, url.pathname);
    }
  }

  #authorize(req: http.IncomingMessage, remote: string): void {
    if (isLoopback(remote)) return;
    if (this.#tokenDigest === undefined) {
      throw new HttpError('ERR_PERMISSION_DENIED', `remote API access from ${remote} is disabled: start the agent with --api-token-file to allow it`);
    }
    const header = req.headers.authorization ?? '';
    const match = /^Bearer\s+(.+)$/i.exec(header);
    if (!match || !timingSafeEqual(digest(match[1]!.trim()), this.#tokenDigest)) {
      throw new HttpError('ERR_UNAUTHENTICATED', 'missing or wrong bearer token (send Authorization: Bearer <token>, or --token / SHOAL_TOKEN with the CLI)');
    }
  }

  #sendError(res: http.ServerResponse, err: unknown, encoding: Encoding, path: string): void {
    let code = 'ERR_INTERNAL';
    let message: string;
    let details: Record<string, string> = {};
    if (err instanceof ShoalError) {
      code = err.code;
      message = err.message;
      details = Object.fromEntries(Object.entries(err.details).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]));
    } else {
      this.#log.error({ err: describeError(err), path }, 'rpc handler failed');
      message = `internal error in ${path}: ${describeError(err)}`;
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const status = httpStatusFor(code);
    const rpcError = RpcErrorType.fromObject({ code, message, details });
    const payload = encoding === 'json'
      ? Buffer.from(JSON.stringify({ code, message, details }))
      : Buffer.from(RpcErrorType.encode(rpcError).finish());
    res.writeHead(status, { 'content-type': encoding === 'json' ? 'application/json' : 'application/x-protobuf', 'x-shoal-error-code': code, 'content-length': payload.length });
    res.end(payload);
  }

  /**
   * Runs a registered method in-process on a protobuf body (a call forwarded by another agent over the peer
   * network). Returns the encoded response; throws a ShoalError as the HTTP path would answer it.
   */
  async dispatch(path: string, body: Uint8Array, timeoutMs: number, forwardedFrom: string): Promise<Uint8Array> {
    const registered = this.#methods.get(path);
    if (!registered) throw new HttpError('ERR_UNKNOWN_METHOD', `no RPC method at ${path}`, { path });
    const { descriptor, handler } = registered;
    const where = `${descriptor.service}/${descriptor.method}`;
    const request = decodeRequest(descriptor, Buffer.from(body), where);
    const response = await runWithDeadline(handler, request, timeoutMs, `peer:${forwardedFrom.slice(0, 16)}`, undefined, where, forwardedFrom);
    return descriptor.responseType.encode(response).finish();
  }

  get address(): AddressInfo | undefined {
    return this.#address;
  }
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

function requestEncoding(contentType: string | undefined): Encoding {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (type === 'application/json') return 'json';
  if (type === 'application/x-protobuf' || type === 'application/protobuf' || type === 'application/octet-stream') return 'proto';
  throw new HttpError('ERR_UNSUPPORTED_MEDIA_TYPE', `content-type "${contentType ?? ''}" is not supported: send application/x-protobuf or application/json`);
}

function parseTimeout(header: string | string[] | undefined): number {
  if (header === undefined) return LIMITS.defaultRpcTimeoutMs;
  const value = Number(Array.isArray(header) ? header[0] : header);
  if (!Number.isFinite(value) || value <= 0) throw new HttpError('ERR_INVALID_ARGUMENT', `x-shoal-timeout-ms must be a positive number of milliseconds, got "${String(header)}"`);
  return Math.min(value, LIMITS.maxRpcTimeoutMs);
}

async function readBody(req: http.IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > maxBytes) {
    req.resume();
    throw new HttpError('ERR_REQUEST_TOO_LARGE', `request body of ${declared} bytes exceeds the limit of ${maxBytes} bytes`, { maxBytes });
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > maxBytes) {
      req.resume();
      throw new HttpError('ERR_REQUEST_TOO_LARGE', `request body exceeds the limit of ${maxBytes} bytes`, { maxBytes });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function decodeRequest(descriptor: MethodDescriptor<unknown, unknown>, body: Buffer, where: string): unknown {
  try {
    return descriptor.requestType.decode(body);
  } catch (err) {
    throw new HttpError('ERR_INVALID_ARGUMENT', `${where}: cannot decode the protobuf request: ${err instanceof Error ? err.message : String(err)}`);
  }
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** A proto3 JSON request (json.ts); an empty body is an empty request. Errors name the field's path and type. */
function decodeJsonRequest(json: ProtoJson, descriptor: MethodDescriptor<unknown, unknown>, body: Buffer, where: string): unknown {
  let parsed: unknown;
  try {
    parsed = body.length === 0 ? {} : JSON.parse(UTF8.decode(body));
  } catch (err) {
    throw new HttpError('ERR_INVALID_ARGUMENT', `${where}: cannot decode the JSON request: ${err instanceof TypeError ? 'the body is not valid UTF-8' : err instanceof Error ? err.message : String(err)}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new HttpError('ERR_INVALID_ARGUMENT', `${where}: cannot decode the JSON request: the body must be a JSON object`);
  }
  try {
    return json.read(descriptor.requestType, parsed);
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw new HttpError('ERR_INVALID_ARGUMENT', `${where}: cannot decode the JSON request: ${err.message}`, { ...err.details });
    throw err;
  }
}

/** Runs a handler under a deadline; aborts its signal when the deadline passes or the HTTP client goes away. */
async function runWithDeadline(handler: Handler<unknown, unknown>, request: unknown, timeoutMs: number, remote: string, req: http.IncomingMessage | undefined, where: string, forwardedFrom?: string): Promise<unknown> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const onClose = (): void => controller.abort(new ShoalError('ERR_CANCELLED', `${where}: the client went away`));
  req?.socket.once('close', onClose);
  try {
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const err = new ShoalError('ERR_DEADLINE_EXCEEDED', `${where} did not complete within its deadline of ${timeoutMs} ms`, { timeoutMs });
        controller.abort(err);
        reject(err);
      }, timeoutMs);
    });
    const ctx: CallContext = { signal: controller.signal, timeoutMs, remoteAddress: remote, ...(forwardedFrom === undefined ? {} : { forwardedFrom }) };
    return await Promise.race([Promise.resolve().then(() => handler(request, ctx)), deadline]);
  } finally {
    clearTimeout(timer);
    req?.socket.off('close', onClose);
  }
}
