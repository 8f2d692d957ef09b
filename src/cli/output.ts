/** Shared CLI plumbing: the agent client from global flags, output formats, tables. */
import { InvalidArgumentError } from '../lib/errors.js';
import { ShoalClient } from '../rpc/index.js';

export interface GlobalFlags {
  address?: string;
  token?: string;
  timeout?: string;
  /** Reads may be answered by any server from its copy, at the index it has (Nomad's `-stale`). */
  stale?: boolean;
}

export interface OutputFlags {
  output: string;
}

export function parseOutput(value: string): 'table' | 'json' {
  if (value !== 'table' && value !== 'json') throw new InvalidArgumentError(`-o/--output must be table or json, got "${value}"`);
  return value;
}

export function clientFrom(flags: GlobalFlags): ShoalClient {
  const timeoutMs = flags.timeout === undefined ? undefined : Number(flags.timeout) * 1000;
  if (timeoutMs !== undefined && !(timeoutMs > 0)) throw new InvalidArgumentError(`--timeout must be a positive number of seconds, got "${flags.timeout}"`);
  return new ShoalClient({
    ...(flags.address === undefined ? {} : { address: flags.address }),
    ...(flags.token === undefined ? {} : { token: flags.token }),
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
  });
}

/**
 * Refuses to send a secret's value to an agent over plain HTTP on another host: the API is HTTP, and a value that
 * crossed the network in the clear would defeat the point of sealing it. Loopback (the CLI on a cluster host) and
 * https:// (a TLS proxy in front of the API) are fine.
 */
export function checkSecretTransport(client: ShoalClient, what: string): void {
  const url = new URL(client.baseUrl);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const loopback = host === 'localhost' || host === '::1' || /^127\./.test(host);
  if (url.protocol === 'http:' && !loopback) {
    throw new InvalidArgumentError(`${what}: refusing to send a secret's value to ${client.baseUrl} over plain HTTP; run the command on a cluster host (its agent's loopback address), or reach the API through https://`);
  }
}

export function printTable(headers: string[], rows: string[][]): void {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  process.stdout.write(`${[line(headers), ...rows.map(line)].join('\n')}\n`);
}

// --- Control-plane helpers (job, alloc, node commands) ------------------------------------------------------------

/** protobufjs `toObject` options for `-o json`: 64-bit numbers as numbers, defaults present, bytes as base64. */
export const JSON_OUTPUT = { enums: String, longs: Number, bytes: String, defaults: true, arrays: true, objects: true } as const;

interface ToObject<T> {
  toObject(message: T, options: typeof JSON_OUTPUT): Record<string, unknown>;
}

/** Prints a protobuf response as pretty JSON (`-o json`). */
export function printMessageJson<T>(type: ToObject<T>, message: T): void {
  process.stdout.write(`${JSON.stringify(type.toObject(message, JSON_OUTPUT), null, 2)}\n`);
}

/** Ids are shown by their first 8 characters; every command accepts any unique prefix back. */
export function shortId(id: string | null | undefined): string {
  return (id ?? '').slice(0, 8);
}

/** "resources: memory exhausted (3), constraint node.labels.zone==x (2)": most frequent reason first. */
export function formatReasons(reasons: Record<string, number> | null | undefined): string {
  const entries = Object.entries(reasons ?? {}).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  return entries.map(([reason, count]) => `${reason} (${count})`).join(', ');
}

/** "web: 2 replicas not placed: resources: memory exhausted (3)". */
export function formatFailedPlacement(p: { service?: string | null; missing?: number | null; reasons?: Record<string, number> | null }): string {
  const missing = p.missing ?? 0;
  const reasons = formatReasons(p.reasons);
  return `${p.service ?? '?'}: ${missing} ${missing === 1 ? 'replica' : 'replicas'} not placed${reasons === '' ? ' (no node was considered: is any node ready and eligible?)' : `: ${reasons}`}`;
}

/** Millicores as cores, the way Compose writes them: 500 -> "0.5", 2000 -> "2", 1250 -> "1.25". */
export function formatCores(millicores: number | null | undefined): string {
  return String(Math.round(u64(millicores) / 10) / 100);
}

/** Bytes as whole MiB. */
export function formatMiB(bytes: number | null | undefined): string {
  return String(Math.round(u64(bytes) / (1024 * 1024)));
}

/** Prints "KEY  value" lines with the values aligned. */
export function printFields(fields: [string, string][]): void {
  const width = Math.max(...fields.map(([k]) => k.length));
  process.stdout.write(`${fields.map(([k, v]) => `${k.padEnd(width)}  ${v}`.trimEnd()).join('\n')}\n`);
}

/**
 * Progress lines of a long-running command. On a terminal the block of lines is rewritten in place; otherwise a
 * line is printed only when it changed since it was last printed, so logs and pipes get one line per change.
 */
export class ProgressLines {
  readonly #out: NodeJS.WriteStream;
  readonly #tty: boolean;
  readonly #last = new Map<string, string>();
  #drawn = 0;

  constructor(out: NodeJS.WriteStream = process.stdout) {
    this.#out = out;
    this.#tty = out.isTTY === true;
  }

  /** `lines` are keyed (by service, node...) so a non-terminal prints only the keys whose text changed. */
  update(lines: [key: string, text: string][]): void {
    if (this.#tty) {
      const up = this.#drawn > 0 ? `\x1b[${this.#drawn}A` : '';
      this.#out.write(`${up}${lines.map(([, text]) => `\x1b[2K${text}\n`).join('')}`);
      // A block that shrank leaves stale lines below it: clear them.
      for (let i = lines.length; i < this.#drawn; i++) this.#out.write('\x1b[2K\n');
      if (this.#drawn > lines.length) this.#out.write(`\x1b[${this.#drawn - lines.length}A`);
      this.#drawn = lines.length;
      return;
    }
    for (const [key, text] of lines) {
      if (this.#last.get(key) === text) continue;
      this.#last.set(key, text);
      this.#out.write(`${text}\n`);
    }
  }
}

/**
 * A uint64 field of a decoded response as a number. The generated types say `number`, but protobufjs decodes 64-bit
 * fields to `Long` objects whenever the `long` package is installed; `===` and `<` on those compare objects or
 * strings, so every uint64 the CLI computes with goes through here (printing one is safe: Long's toString is decimal).
 */
export function u64(value: number | { toString(): string } | null | undefined): number {
  return Number(value ?? 0);
}
