/**
 * Structured logging through pino. One root logger per process; every component takes a child with its name
 * (`logger.child({ component: 'transport' })`) so a line always says where it came from.
 *
 * Level: explicit option, else SHOAL_LOG_LEVEL, else "info". Output is JSON lines, pretty-printed only when
 * stdout is a terminal (pino-pretty), so files and journald get machine-readable lines.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';
import { InvalidArgumentError } from '../lib/errors.js';
import { LIMITS } from '../lib/limits.js';

export type { Logger };

export const LOG_LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export interface LoggerOptions {
  level?: string;
  name?: string;
  /** Force pretty output on or off; by default it follows whether stdout is a TTY. */
  pretty?: boolean;
  /** Write here instead of stdout (tests). */
  destination?: NodeJS.WritableStream;
}

export function parseLogLevel(value: string, where = 'log level'): LevelWithSilent {
  const level = value.trim().toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new InvalidArgumentError(`${where}: "${value}" is not one of ${LOG_LEVELS.join(', ')}`, { where, value });
  }
  return level as LevelWithSilent;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = parseLogLevel(options.level ?? process.env['SHOAL_LOG_LEVEL'] ?? 'info', options.level === undefined ? 'SHOAL_LOG_LEVEL' : 'log level');
  const base = {
    level,
    name: options.name ?? 'shoal',
    base: { pid: process.pid },
    formatters: { level: (label: string) => ({ level: label }) },
    hooks: {
      // Keeps one oversized field (a peer's garbage, a huge error) from flooding the log.
      logMethod(args: unknown[], method: (...a: unknown[]) => void) {
        method.apply(this, args.map((a) => (typeof a === 'string' && a.length > LIMITS.maxLogFieldChars ? `${a.slice(0, LIMITS.maxLogFieldChars)}…` : a)));
      },
    },
  };
  if (options.destination) return pino(base, options.destination);
  const pretty = options.pretty ?? process.stdout.isTTY === true;
  if (pretty) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid' } } });
  }
  return pino(base);
}

/** A logger that drops everything, for tests and library use without configuration. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
