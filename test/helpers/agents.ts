/**
 * Real agents as separate processes (`bin/shoal agent`), for end-to-end tests: start one, wait for its "ready"
 * line, talk to it through the typed client, signal it, and make sure nothing is left running after the test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import dgram from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { ShoalClient } from '../../src/rpc/index.js';

export const SHOAL_BIN = fileURLToPath(new URL('../../bin/shoal', import.meta.url));

export interface TestContext {
  teardown(fn: () => unknown): void;
}

export interface AgentProcess {
  name: string;
  id: string;
  api: string;
  peer: string;
  child: ChildProcess;
  client: ShoalClient;
  /** Resolves with the exit code (or the signal name) when the process ends. */
  exited: Promise<number | string>;
  output(): string;
}

export interface StartAgentOptions {
  name: string;
  dataDir: string;
  bind: string;
  join?: string[];
  keyFile: string;
  /** Run inside this network namespace (`ip netns exec`). */
  ns?: string;
  api?: string;
  extraArgs?: string[];
  env?: NodeJS.ProcessEnv;
}

/** A UDP port free on `host` right now (first agents need an explicit port). */
export async function freeUdpPort(host: string): Promise<number> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve, reject) => socket.bind(0, host, () => resolve()).once('error', reject));
  const port = socket.address().port;
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

export async function startAgent(t: TestContext, o: StartAgentOptions): Promise<AgentProcess> {
  const args = [SHOAL_BIN, 'agent', '--name', o.name, '--data-dir', o.dataDir, '--bind', o.bind, '--cluster-key-file', o.keyFile,
    '--api', o.api ?? '127.0.0.1:0', '--log-level', 'debug', ...(o.join && o.join.length > 0 ? ['--join', o.join.join(',')] : []), ...(o.extraArgs ?? [])];
  const child = o.ns
    ? spawn('ip', ['netns', 'exec', o.ns, process.execPath, ...args], { env: { ...process.env, ...o.env }, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(process.execPath, args, { env: { ...process.env, ...o.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  const ready = await new Promise<{ id: string; api: string; peer: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`agent ${o.name} did not become ready within 60 s\nstdout:\n${out.slice(-4000)}\nstderr:\n${err.slice(-2000)}`)), 60_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d;
      for (const line of out.split('\n')) {
        if (!line.startsWith('{"event":"ready"')) continue;
        clearTimeout(timer);
        resolve(JSON.parse(line) as { id: string; api: string; peer: string });
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`agent ${o.name} exited (${code}) before it was ready\nstdout:\n${out.slice(-4000)}\nstderr:\n${err.slice(-2000)}`));
    });
  });
  return {
    name: o.name, id: ready.id, api: ready.api, peer: ready.peer, child, exited,
    client: new ShoalClient({ address: `http://${ready.api}`, timeoutMs: 5_000 }),
    output: () => `${out}\n${err}`,
  };
}

/** Polls `check` until it returns true; fails with `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 120_000, intervalMs = 250): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}${lastError ? ` (last error: ${String(lastError)})` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** The status of every member as `viewer` sees it, by name. */
export async function statuses(viewer: AgentProcess): Promise<Record<string, string>> {
  const res = await viewer.client.members.list();
  const names: Record<number, string> = { 1: 'alive', 2: 'suspect', 3: 'dead', 4: 'left' };
  return Object.fromEntries(res.members.map((m) => [m.name ?? '', names[m.status ?? 0] ?? 'unknown']));
}

/** Pids of the live (not zombie) processes whose environment contains `marker` (tasks the test's jobs started). */
export function processesWith(marker: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, 'utf8').includes(marker) && !/\) Z /.test(readFileSync(`/proc/${entry}/stat`, 'utf8'))) pids.push(Number(entry));
    } catch (_gone) { /* exited meanwhile */ }
  }
  return pids;
}
