/**
 * Health checks with Compose/Docker semantics, split in two:
 *  - `HealthTracker` is the rule (pure, no timers): it turns probe results at given times into a status, so the
 *    mock driver can run it on a simulated clock and the real drivers on the real one.
 *  - `HealthMonitor` runs probes on real timers and feeds the tracker (process driver; docker HTTP/TCP probes).
 *
 * Rules: status is `starting` until the first success; a failure inside the start period does not count; after
 * it, `retries` failures in a row make the task `unhealthy`; one success makes it `healthy` again.
 */
import net from 'node:net';
import http from 'node:http';
import type { Clock } from '../lib/clock.js';
import { describeError } from '../lib/errors.js';
import { clip } from './spec.js';
import type { HealthCheckSpec, HealthReport, HealthStatus } from './types.js';

export const NO_HEALTH: HealthReport = { status: 'none', failingStreak: 0, lastOutput: '' };

export class HealthTracker {
  #status: HealthStatus = 'starting';
  #failingStreak = 0;
  #lastOutput = '';

  constructor(private readonly spec: HealthCheckSpec, private readonly startedAtMs: number) {}

  record(ok: boolean, atMs: number, output: string): HealthReport {
    this.#lastOutput = clip(output);
    if (ok) {
      this.#status = 'healthy';
      this.#failingStreak = 0;
    } else if (atMs - this.startedAtMs >= this.spec.startPeriodMs || this.#status === 'healthy' || this.#status === 'unhealthy') {
      // Docker counts failures inside the start period only once the task has been healthy at least once.
      this.#failingStreak += 1;
      if (this.#failingStreak >= this.spec.retries) this.#status = 'unhealthy';
    }
    return this.report();
  }

  report(): HealthReport {
    return { status: this.#status, failingStreak: this.#failingStreak, lastOutput: this.#lastOutput };
  }
}

export interface ProbeResult {
  ok: boolean;
  output: string;
}

/** Runs one probe: resolves (never rejects) within roughly `timeoutMs`. */
export type Probe = (timeoutMs: number) => Promise<ProbeResult>;

export function tcpProbe(port: number, host = '127.0.0.1'): Probe {
  return (timeoutMs) => new Promise((resolve) => {
    const socket = net.connect({ port, host });
    const done = (r: ProbeResult): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done({ ok: false, output: `tcp ${host}:${port}: no connection within ${timeoutMs} ms` }), timeoutMs);
    socket.once('connect', () => done({ ok: true, output: `tcp ${host}:${port}: connected` }));
    socket.once('error', (err) => done({ ok: false, output: `tcp ${host}:${port}: ${describeError(err)}` }));
  });
}

export function httpProbe(port: number, path = '/', host = '127.0.0.1'): Probe {
  return (timeoutMs) => new Promise((resolve) => {
    let settled = false;
    const finish = (r: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(r);
    };
    const req = http.get({ host, port, path, agent: false }, (res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      // Docker's and Consul's convention: 2xx and 3xx are healthy.
      finish({ ok: status >= 200 && status < 400, output: `GET http://${host}:${port}${path}: ${status}` });
    });
    const timer = setTimeout(() => finish({ ok: false, output: `GET http://${host}:${port}${path}: no answer within ${timeoutMs} ms` }), timeoutMs);
    req.once('error', (err) => finish({ ok: false, output: `GET http://${host}:${port}${path}: ${describeError(err)}` }));
  });
}

/** Runs a probe every interval on real timers and keeps the latest report. */
export class HealthMonitor {
  readonly #tracker: HealthTracker;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(private readonly spec: HealthCheckSpec, private readonly probe: Probe, private readonly clock: Clock, startedAtMs: number) {
    this.#tracker = new HealthTracker(spec, startedAtMs);
    this.#schedule();
  }

  report(): HealthReport {
    return this.#tracker.report();
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.#run(), this.spec.intervalMs);
    this.#timer.unref();
  }

  async #run(): Promise<void> {
    const result = await this.probe(this.spec.timeoutMs);
    if (this.#stopped) return;
    this.#tracker.record(result.ok, this.clock.nowMs(), result.output);
    this.#schedule();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
  }
}
