/**
 * Units as Compose writes them. Durations: "1h30m", "10s", "250ms", "1.5s" (Go's time.ParseDuration syntax, which
 * Compose uses). Memory: "512m", "1g", "1.5GiB", "1024" (bytes; Compose's byte units, powers of 1024). CPUs: "0.5"
 * or 0.5, in cores, kept as millicores.
 */

const DURATION_UNITS_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds, or an error message. */
export function parseDurationMs(value: unknown): number | string {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? Math.round(value / 1e6) : 'must be a non-negative duration';
  if (typeof value !== 'string') return `must be a duration such as "10s" or "1m30s", got ${typeof value}`;
  const text = value.trim();
  if (text === '0') return 0;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let consumed = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    total += Number(m[1]) * (DURATION_UNITS_MS[m[2]!] as number);
    consumed = re.lastIndex;
  }
  if (text === '' || consumed !== text.length) return `"${value}" is not a duration (use a number with a unit: ms, s, m, h, e.g. "1m30s")`;
  return Math.round(total);
}

const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3, t: 1024 ** 4, tb: 1024 ** 4, tib: 1024 ** 4 };

export function parseBytes(value: unknown): number | string {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : 'must be a whole, non-negative number of bytes';
  if (typeof value !== 'string') return `must be a size such as "512M" or "1G", got ${typeof value}`;
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(value.trim());
  const unit = m ? BYTE_UNITS[(m[2] ?? '').toLowerCase()] : undefined;
  if (!m || unit === undefined) return `"${value}" is not a size (use a number with b, k, m, g or t, e.g. "512M")`;
  return Math.round(Number(m[1]) * unit);
}

export function parseCpuMillicores(value: unknown): number | string {
  const n = typeof value === 'string' && /^\d+(\.\d+)?$/.test(value.trim()) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return `must be a non-negative number of CPUs such as 0.5 or "2", got ${JSON.stringify(value)}`;
  const milli = Math.round(n * 1000);
  if (n > 0 && milli === 0) return `${n} CPUs is below the smallest unit (0.001)`;
  return milli;
}

/** Splits a command string into argv as a POSIX shell would for plain words and quotes (no expansion). */
export function splitCommand(text: string): string[] | string {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (quote === "'") {
      if (c === "'") quote = null;
      else cur += c;
      continue;
    }
    if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === '\\' && i + 1 < text.length && '"\\$`'.includes(text[i + 1] as string)) cur += text[++i];
      else cur += c;
      continue;
    }
    if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < text.length) {
      cur += text[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote) return `unterminated ${quote} quote in command "${text}"`;
  if (inWord) out.push(cur);
  return out;
}
