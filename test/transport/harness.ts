/**
 * Starts test agents (test/transport/fixtures/peer.ts) as separate processes, optionally inside a network
 * namespace, and follows what they report. Every process is killed by pid in the test's teardown.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

const fixture = fileURLToPath(new URL('./fixtures/peer.ts', import.meta.url));
const rawFixture = fileURLToPath(new URL('./fixtures/raw-peer.ts', import.meta.url));
// tap loads TypeScript with ts-node through this import; the child needs it too (NODE_OPTIONS does not carry it).
const tsImport = process.execArgv.find((a) => /@tapjs[\\/]typescript.*import/.test(a))?.replace(/^--import=/, '')
  ?? new URL('../../node_modules/@tapjs/typescript/dist/esm/import.mjs', import.meta.url).href;

export interface PeerEvent {
  ev: string;
  [key: string]: unknown;
}

export interface PeerOptions {
  name: string;
  host: string;
  port: number;
  bootstrap: string[];
  clusterKey: string;
  netns?: string;
  wireMin?: number;
  wireMax?: number;
  dataDir?: string;
}

export interface TestContext {
  teardown(fn: () => unknown): void;
  comment(...args: unknown[]): void;
}

export class Peer {
  readonly name: string;
  readonly options: PeerOptions;
  readonly events: PeerEvent[] = [];
  /** Node ids with an authenticated link up now. */
  readonly up = new Set<string>();
  nodeId = '';
  port = 0;
  stderrTail: string[] = [];
  exitCode: number | null | undefined = undefined;
  readonly #child: ChildProcess;
  #waiters: Array<() => void> = [];

  constructor(child: ChildProcess, options: PeerOptions) {
    this.#child = child;
    this.name = options.name;
    this.options = options;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let event: PeerEvent;
      try {
        event = JSON.parse(line) as PeerEvent;
      } catch (_notJson) {
        this.stderrTail.push(`stdout: ${line}`);
        return;
      }
      if (event.ev === 'up') this.up.add(event['nodeId'] as string);
      if (event.ev === 'down') this.up.delete(event['nodeId'] as string);
      this.events.push(event);
      this.#wake();
    });
    createInterface({ input: child.stderr! }).on('line', (line) => {
      this.stderrTail.push(line);
      if (this.stderrTail.length > 200) this.stderrTail.shift();
    });
    child.on('exit', (code) => {
      this.exitCode = code;
      this.#wake();
    });
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  command(cmd: Record<string, unknown>): void {
    this.#child.stdin!.write(`${JSON.stringify(cmd)}\n`);
  }

  /** Waits until `check` returns a value (not undefined); fails after `deadlineMs` with the agent's last log lines. */
  async waitFor<T>(what: string, check: () => T | undefined, deadlineMs: number): Promise<T> {
    const start = Date.now();
    for (;;) {
      const v = check();
      if (v !== undefined) return v;
      if (this.exitCode !== undefined) throw new Error(`${this.name} exited (${this.exitCode}) while waiting for ${what}\n${this.stderrTail.slice(-20).join('\n')}`);
      const left = deadlineMs - (Date.now() - start);
      if (left <= 0) throw new Error(`${this.name}: no ${what} within ${deadlineMs} ms\n${this.stderrTail.slice(-20).join('\n')}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 250));
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Waits for an event after index `from` matching `pred`. */
  waitEvent(what: string, pred: (e: PeerEvent) => boolean, deadlineMs: number, from = 0): Promise<PeerEvent> {
    return this.waitFor(what, () => this.events.slice(from).find(pred), deadlineMs);
  }

  async stats(): Promise<{ stats: Record<string, number>; links: string[] }> {
    const mark = this.events.length;
    this.command({ cmd: 'stats' });
    const e = await this.waitEvent('stats', (x) => x.ev === 'stats', 10_000, mark);
    return { stats: e['stats'] as Record<string, number>, links: e['links'] as string[] };
  }

  /** Graceful stop; SIGKILL if it does not exit in time. */
  async stop(): Promise<void> {
    if (this.exitCode !== undefined) return;
    this.command({ cmd: 'stop' });
    try {
      await this.waitFor('exit', () => (this.exitCode !== undefined ? true : undefined), 10_000);
    } catch (_slow) {
      this.kill();
    }
  }

  kill(): void {
    if (this.exitCode === undefined && this.#child.pid !== undefined) {
      try {
        process.kill(this.#child.pid, 'SIGKILL');
      } catch (_gone) {
        // exited between the check and the kill
      }
    }
  }
}

export async function startPeer(t: TestContext, options: PeerOptions): Promise<Peer> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), `shoal-transport-${options.name}-`));
  const config = JSON.stringify({ ...options, dataDir });
  const nodeArgs = [`--import=${tsImport}`, fixture, config];
  const [cmd, args] = options.netns ? ['ip', ['netns', 'exec', options.netns, process.execPath, ...nodeArgs]] : [process.execPath, nodeArgs];
  const child = spawn(cmd, args as string[], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1' } });
  const peer = new Peer(child, { ...options, dataDir });
  t.teardown(async () => {
    await peer.stop();
    if (options.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true });
  });
  const ready = await peer.waitEvent('ready', (e) => e.ev === 'ready', 60_000);
  peer.nodeId = ready['nodeId'] as string;
  peer.port = ready['port'] as number;
  return peer;
}

/** Waits until every peer has an authenticated link to every other one. */
export async function waitFullMesh(peers: readonly Peer[], deadlineMs: number): Promise<void> {
  for (const p of peers) {
    const others = peers.filter((q) => q !== p).map((q) => q.nodeId);
    await p.waitFor(`links to all ${others.length} others`, () => (others.every((id) => p.up.has(id)) ? true : undefined), deadlineMs);
  }
}

/** Every peer sends to every other; waits until each message arrives. */
export async function exchangeAll(peers: readonly Peer[], tag: string, deadlineMs: number): Promise<void> {
  for (const a of peers) for (const b of peers) if (a !== b) a.command({ cmd: 'send', to: b.nodeId, text: `${tag}:${a.name}->${b.name}` });
  for (const a of peers) {
    for (const b of peers) {
      if (a === b) continue;
      const text = `${tag}:${a.name}->${b.name}`;
      await b.waitEvent(`message "${text}"`, (e) => e.ev === 'msg' && e['text'] === text && e['from'] === a.nodeId, deadlineMs);
    }
  }
}

/** A port in a range the kernel does not hand out for ephemeral ports, different on every run. */
export function randomPort(): number {
  return 20_000 + Math.floor(Math.random() * 10_000);
}

export interface RawOptions {
  host: string;
  port: number;
  bootstrap: string[];
  target: string;
  clusterKey?: string;
  mode: 'oversized' | 'truncated' | 'random';
  netns?: string;
}

/** Runs the misbehaving peer (fixtures/raw-peer.ts) once and returns what it saw. */
export async function runRawPeer(t: TestContext, options: RawOptions): Promise<{ authenticated: boolean; closedByRemote: boolean; reject?: string }> {
  const nodeArgs = [`--import=${tsImport}`, rawFixture, JSON.stringify(options)];
  const [cmd, args] = options.netns ? ['ip', ['netns', 'exec', options.netns, process.execPath, ...nodeArgs]] : [process.execPath, nodeArgs];
  const child = spawn(cmd, args as string[], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1' } });
  t.teardown(() => {
    if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  const line = stdout.split('\n').find((l) => l.includes('"result"'));
  if (!line) throw new Error(`raw peer exited (${code}) without a result\n${stderr}`);
  return JSON.parse(line) as { authenticated: boolean; closedByRemote: boolean; reject?: string };
}

/** Polls a peer's counters until `pred` holds. */
export async function waitStats(peer: Peer, what: string, pred: (stats: Record<string, number>) => boolean, deadlineMs: number): Promise<Record<string, number>> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const { stats } = await peer.stats();
    if (pred(stats)) return stats;
    if (Date.now() > end) throw new Error(`${peer.name}: ${what} not reached within ${deadlineMs} ms (stats ${JSON.stringify(stats)})\n${peer.stderrTail.slice(-10).join('\n')}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
