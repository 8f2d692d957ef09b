/**
 * Task output on disk, for the process driver: `<dir>/stdout.log`, `stdout.log.1` (older), ... up to
 * LIMITS.driverLogMaxFiles per stream.
 *
 * The task writes its files itself (its stdout/stderr are file descriptors opened with O_APPEND), never through a
 * pipe to the agent: an agent restart must not break the task's output (a broken pipe would kill it with
 * SIGPIPE), and the files outlive both. Rotation is therefore copy-then-truncate (logrotate's `copytruncate`):
 * bytes written between the copy and the truncation are lost; that window is a few microseconds per rotation.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LIMITS } from '../lib/limits.js';
import type { LogChunk, LogOptions } from './types.js';

export type StreamName = 'stdout' | 'stderr';
export const STREAMS: readonly StreamName[] = ['stdout', 'stderr'];

export const logFile = (dir: string, stream: StreamName, generation = 0): string => path.join(dir, generation === 0 ? `${stream}.log` : `${stream}.log.${generation}`);

async function sizeOf(file: string): Promise<number> {
  try {
    return (await fs.stat(file)).size;
  } catch (_e) {
    return 0;
  }
}

async function readFrom(file: string, offset: number): Promise<Buffer> {
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(file, 'r');
    const size = (await handle.stat()).size;
    if (size <= offset) return Buffer.alloc(0);
    const buf = Buffer.alloc(size - offset);
    const { bytesRead } = await handle.read(buf, 0, buf.length, offset);
    return buf.subarray(0, bytesRead);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return Buffer.alloc(0);
    throw err;
  } finally {
    await handle?.close();
  }
}

/** Rotates a stream's file once it reaches the size limit. */
export async function rotateIfNeeded(dir: string, maxFileBytes = LIMITS.driverLogMaxFileBytes, maxFiles = LIMITS.driverLogMaxFiles): Promise<void> {
  for (const stream of STREAMS) {
    const live = logFile(dir, stream);
    if ((await sizeOf(live)) < maxFileBytes) continue;
    await fs.rm(logFile(dir, stream, maxFiles - 1), { force: true });
    for (let g = maxFiles - 2; g >= 1; g--) {
      await fs.rename(logFile(dir, stream, g), logFile(dir, stream, g + 1)).catch(() => undefined);
    }
    await fs.copyFile(live, logFile(dir, stream, 1));
    await fs.truncate(live, 0);
  }
}

export function lastLines(buf: Buffer, n: number): Buffer {
  if (n <= 0) return Buffer.alloc(0);
  let end = buf.length;
  if (end > 0 && buf[end - 1] === 0x0a) end -= 1; // a trailing newline ends the last line, it does not start one
  let count = 0;
  for (let i = end - 1; i >= 0; i--) {
    if (buf[i] === 0x0a && ++count === n) return buf.subarray(i + 1);
  }
  return buf;
}

/** All of a stream, oldest first, and how much of the live file that was (where a follow goes on from). */
async function wholeStream(dir: string, stream: StreamName): Promise<{ data: Buffer; liveBytes: number }> {
  const parts: Buffer[] = [];
  for (let g = LIMITS.driverLogMaxFiles - 1; g >= 1; g--) parts.push(await readFrom(logFile(dir, stream, g), 0));
  const live = await readFrom(logFile(dir, stream), 0);
  parts.push(live);
  return { data: Buffer.concat(parts), liveBytes: live.length };
}

/**
 * Reads a task's logs. Without `follow`: what is on disk now (stdout first, then stderr). With `follow`: then
 * polls the live files until `isDone()` is true and a last read found nothing new.
 */
export async function* readLogs(dir: string, options: LogOptions, isDone: () => boolean): AsyncGenerator<LogChunk> {
  const streams = STREAMS.filter((s) => options[s] !== false);
  const tail = options.tail === undefined ? undefined : Math.min(Math.max(0, Math.floor(options.tail)), LIMITS.driverMaxLogTailLines);
  const offsets = new Map<StreamName, number>();
  for (const stream of streams) {
    const all = await wholeStream(dir, stream);
    const shown = tail === undefined ? all.data : lastLines(all.data, tail);
    if (shown.length > 0) yield { stream, data: shown };
    // Go on from exactly what was read: whatever the task wrote since comes with the first poll.
    offsets.set(stream, all.liveBytes);
  }
  if (!options.follow) return;
  for (;;) {
    if (options.signal?.aborted) return;
    const doneBefore = isDone();
    let grew = false;
    for (const stream of streams) {
      const live = logFile(dir, stream);
      let offset = offsets.get(stream) ?? 0;
      if ((await sizeOf(live)) < offset) {
        // Rotated under us: the rest of what we were reading is now the first rotated file.
        const rest = await readFrom(logFile(dir, stream, 1), offset);
        if (rest.length > 0) yield { stream, data: rest };
        offset = 0;
      }
      const fresh = await readFrom(live, offset);
      if (fresh.length > 0) {
        grew = true;
        yield { stream, data: fresh };
      }
      offsets.set(stream, offset + fresh.length);
    }
    if (doneBefore && !grew) return;
    await sleep(LIMITS.driverProcessPollMs);
  }
}
