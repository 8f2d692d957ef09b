import t from 'tap';
import { readFileSync } from 'node:fs';
import { ManualClock } from '../../src/lib/clock.js';
import { MockDriver, MockWorld } from '../../src/drivers/mock.js';
import type { TaskSpec } from '../../src/drivers/types.js';
import { runDriverCompliance } from './compliance.js';

/** Moves the simulated clock, settles the world, and lets promise continuations run. */
function passer(clock: ManualClock, world: MockWorld): (ms: number) => Promise<void> {
  return async (ms) => {
    clock.advance(ms);
    world.tick();
    await new Promise<void>((resolve) => setImmediate(resolve));
  };
}

t.test('compliance', async (t) => {
  const clock = new ManualClock();
  const world = new MockWorld(clock);
  runDriverCompliance(t, {
    makeDriver: () => new MockDriver({ world }),
    pass: passer(clock, world),
    killFromOutside: async (h) => world.kill(h.taskId),
    oom: true,
    missingImage: 'shoal-test/missing:1',
    hostProbes: 'the mock runs no probes: its health is scripted',
    idPrefix: 'mock',
  });
});

t.test('the mock sets no timers and reads no wall clock', async (t) => {
  const source = readFileSync(new URL('../../src/drivers/mock.ts', import.meta.url), 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
  t.notMatch(source, /setTimeout|setInterval|setImmediate|Date\.now|performance\.now|Math\.random/);
});

t.test('a script replays identically on the same clock steps', async (t) => {
  async function run(): Promise<string[]> {
    const clock = new ManualClock();
    const world = new MockWorld(clock);
    const d = new MockDriver({ world });
    const pass = passer(clock, world);
    const trace: string[] = [];
    const base = { name: 'x', healthcheck: { test: { kind: 'cmd-shell' as const, command: 'x' }, intervalMs: 100, timeoutMs: 100, retries: 3, startPeriodMs: 200 } };
    const a = await d.start({ id: 'a', ...base, driverConfig: { runForMs: 1000, exitCode: 2, healthyForMs: 500 } });
    const b = await d.start({ id: 'b', ...base, driverConfig: { ignoreStopSignal: true } });
    void d.stop(b, 'SIGTERM', 700);
    for (let i = 0; i < 15; i++) {
      await pass(100);
      const sa = await d.inspect(a);
      const sb = await d.inspect(b);
      trace.push(`${clock.nowMs()} a=${sa.state}/${sa.health.status}/${sa.exit?.exitCode ?? '-'} b=${sb.state}/${sb.exit?.signal ?? '-'}`);
    }
    return trace;
  }
  const first = await run();
  t.same(await run(), first);
  t.match(first[4], /^500 a=running\/healthy/);
  t.match(first[8], /^900 a=running\/unhealthy/);
  t.match(first[9], /^1000 a=exited\/unhealthy\/2/);
  t.match(first[6], /^700 b=exited\/SIGKILL|b=exited\/SIGKILL$/);
});

t.test('script errors are reported with the field', async (t) => {
  const d = new MockDriver({ world: new MockWorld(new ManualClock()) });
  const spec = (driverConfig: Record<string, unknown>): TaskSpec => ({ id: 's', name: 's', driverConfig });
  await t.rejects(d.start(spec({ runFor: 10 })), { code: 'ERR_TASK_INVALID', message: /driverConfig\.runFor/ });
  await t.rejects(d.start(spec({ exitCode: -1 })), { code: 'ERR_TASK_INVALID', message: /driverConfig\.exitCode/ });
  await t.rejects(d.start(spec({ startError: 'boom' })), { code: 'ERR_TASK_INVALID', message: /startError/ });
  await t.rejects(d.start(spec({ startError: 'start-failed' })), { code: 'ERR_TASK_START', recoverable: true });
  const h = await d.start(spec({}));
  await t.rejects(d.start(spec({})), { code: 'ERR_TASK_INVALID', message: /already running/ });
  await d.destroy(h);
  await t.rejects(d.inspect(h), { code: 'ERR_TASK_LOST' });
});
