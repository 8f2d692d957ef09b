/** Shared CLI plumbing: the agent client from global flags, output formats, tables. */
import { InvalidArgumentError } from '../lib/errors.js';
import { ShoalClient } from '../rpc/index.js';

export interface GlobalFlags {
  address?: string;
  token?: string;
  timeout?: string;
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

export function printTable(headers: string[], rows: string[][]): void {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  process.stdout.write(`${[line(headers), ...rows.map(line)].join('\n')}\n`);
}
