/**
 * The systemd notification protocol (sd_notify(3)) for an agent started by a `Type=notify` unit: READY=1 once the
 * agent is up, STOPPING=1 when it starts leaving, WATCHDOG=1 pings while `WatchdogSec=` is set.
 *
 * Node has no unix datagram sockets, and Shoal installs no native package for one, so each message is sent by the
 * `systemd-notify` binary (part of the `systemd` package on every host that can run the unit) as a short-lived
 * child. The sender is then a child of the main process, which systemd accepts only with `NotifyAccess=all`
 * (agent/README.md explains the choice). Outside systemd (no NOTIFY_SOCKET) nothing is spawned at all.
 */
import { spawn } from 'node:child_process';
import { ShoalError } from '../lib/errors.js';
import { LIMITS } from '../lib/limits.js';

/** A notification could not be delivered (binary missing, failed or timed out). The agent logs it and goes on. */
export class SdNotifyError extends ShoalError {
  constructor(message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super('ERR_SD_NOTIFY', message, details, options);
  }
}

export interface SdNotifierOptions {
  /** Where NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID are read from (default: this process's environment). */
  env?: NodeJS.ProcessEnv;
  /** The notify binary (default `systemd-notify`, found on PATH). */
  binary?: string;
  /** This process's pid, compared with WATCHDOG_PID (default process.pid). */
  pid?: number;
  /** Called with every failed send; sends never throw, since a lost notification must not stop the agent. */
  onError?: (err: SdNotifyError) => void;
}

/** Sends sd_notify messages through `systemd-notify`. Obtain one with `SdNotifier.fromEnv()`. */
export class SdNotifier {
  readonly #env: NodeJS.ProcessEnv;
  readonly #binary: string;
  readonly #onError: (err: SdNotifyError) => void;
  #watchdogTimer: NodeJS.Timeout | null = null;
  /** Milliseconds between watchdog pings (half of WatchdogSec, as sd_watchdog_enabled(3) advises); null when off. */
  readonly watchdogIntervalMs: number | null;

  private constructor(env: NodeJS.ProcessEnv, opts: SdNotifierOptions) {
    this.#env = env;
    this.#binary = opts.binary ?? 'systemd-notify';
    this.#onError = opts.onError ?? (() => undefined);
    this.watchdogIntervalMs = watchdogIntervalMs(env, opts.pid ?? process.pid);
  }

  /** A notifier when systemd asked for notifications (NOTIFY_SOCKET is set), else null: then there is nothing to do. */
  static fromEnv(opts: SdNotifierOptions = {}): SdNotifier | null {
    const env = opts.env ?? process.env;
    const socket = env['NOTIFY_SOCKET'];
    if (socket === undefined || socket === '') return null;
    return new SdNotifier(env, opts);
  }

  /** READY=1: start-up finished; systemd now reports the unit active. */
  ready(status?: string): Promise<boolean> {
    return this.send(['READY=1', ...(status ? [`STATUS=${status}`] : [])]);
  }

  /** STOPPING=1: the agent is leaving; systemd reports "deactivating" instead of suspecting a crash. */
  stopping(status?: string): Promise<boolean> {
    this.stopWatchdog();
    return this.send(['STOPPING=1', ...(status ? [`STATUS=${status}`] : [])]);
  }

  /** WATCHDOG=1: one keep-alive ping. */
  watchdog(): Promise<boolean> {
    return this.send(['WATCHDOG=1']);
  }

  /**
   * Pings every `watchdogIntervalMs` until `stopWatchdog()` or `stopping()`. The timer is unref'd: it never keeps
   * the process alive, and if the event loop stalls the pings stop, which is exactly what the watchdog must see.
   */
  startWatchdog(): void {
    if (this.watchdogIntervalMs === null || this.#watchdogTimer) return;
    this.#watchdogTimer = setInterval(() => void this.watchdog(), this.watchdogIntervalMs);
    this.#watchdogTimer.unref();
  }

  stopWatchdog(): void {
    if (this.#watchdogTimer) clearInterval(this.#watchdogTimer);
    this.#watchdogTimer = null;
  }

  /** Sends `fields` (KEY=VALUE) as one message. Resolves true when `systemd-notify` succeeded, false otherwise. */
  send(fields: readonly string[]): Promise<boolean> {
    for (const f of fields) {
      if (!/^[A-Z_]+=[^\n]*$/.test(f)) {
        this.#onError(new SdNotifyError(`sd_notify field ${JSON.stringify(f)} is not KEY=VALUE on one line`, { field: f }));
        return Promise.resolve(false);
      }
    }
    return new Promise((resolve) => {
      // A child that fails to spawn emits both 'error' and 'close': report only the first.
      let settled = false;
      const fail = (message: string, cause?: unknown): void => {
        if (settled) return;
        settled = true;
        this.#onError(new SdNotifyError(message, { binary: this.#binary, fields }, { cause }));
        resolve(false);
      };
      let child;
      try {
        child = spawn(this.#binary, [...fields], {
          env: this.#env,
          stdio: ['ignore', 'ignore', 'pipe'],
          timeout: LIMITS.sdNotifyTimeoutMs,
        });
      } catch (err) {
        fail(`cannot run ${this.#binary}: ${String(err)}`, err);
        return;
      }
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => {
        if (stderr.length < 1024) stderr += d.toString('utf8');
      });
      child.once('error', (err: NodeJS.ErrnoException) => fail(`cannot run ${this.#binary} (${err.code ?? err.message}); is the systemd package installed?`, err));
      child.once('close', (code, signal) => {
        if (code === 0 && !settled) {
          settled = true;
          resolve(true);
        } else fail(`${this.#binary} ${fields.join(' ')} failed (${code !== null ? `exit ${code}` : `signal ${signal}`})${stderr ? `: ${stderr.trim()}` : ''}`);
      });
    });
  }
}

/**
 * The ping interval from WATCHDOG_USEC, following sd_watchdog_enabled(3): off when unset, not a positive integer,
 * or when WATCHDOG_PID names another process (the variables were inherited, not meant for us).
 */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv, pid: number): number | null {
  const usecText = env['WATCHDOG_USEC'];
  if (usecText === undefined || !/^\d+$/.test(usecText)) return null;
  const usec = Number(usecText);
  if (!Number.isSafeInteger(usec) || usec <= 0) return null;
  const pidText = env['WATCHDOG_PID'];
  if (pidText !== undefined && pidText !== '' && Number(pidText) !== pid) return null;
  return Math.max(1, Math.floor(usec / 2 / 1000));
}
