/**
 * SdNotifier outside systemd: which process it spawns, with what, and how failures come back. A stand-in
 * `systemd-notify` (a shell script recording its arguments and NOTIFY_SOCKET) takes the real one's place, since
 * no service manager listens here; the real binary talking to a real systemd is covered by boot.test.ts, where
 * the unit only becomes active once READY=1 arrived.
 */
import t from 'tap';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SdNotifier, SdNotifyError, watchdogIntervalMs } from '../../src/platform/sd-notify.js';

function fakeNotify(dir: string, body = 'exit 0'): { binary: string; calls: () => string[] } {
  const binary = join(dir, 'systemd-notify');
  const log = join(dir, 'calls.log');
  writeFileSync(log, '');
  writeFileSync(binary, `#!/bin/sh\nprintf '%s|%s\\n' "$NOTIFY_SOCKET" "$*" >> '${log}'\n${body}\n`);
  chmodSync(binary, 0o755);
  return { binary, calls: () => readFileSync(log, 'utf8').split('\n').filter(Boolean) };
}

t.test('no NOTIFY_SOCKET: no notifier, nothing is spawned', async (t) => {
  t.equal(SdNotifier.fromEnv({ env: {} }), null);
  t.equal(SdNotifier.fromEnv({ env: { NOTIFY_SOCKET: '' } }), null);
});

t.test('READY=1, STATUS, STOPPING=1 and WATCHDOG=1 go out through the binary with the socket in its environment', async (t) => {
  const fake = fakeNotify(t.testdir({}));
  const errors: SdNotifyError[] = [];
  const n = SdNotifier.fromEnv({ env: { NOTIFY_SOCKET: '/run/test/notify', PATH: process.env['PATH'] }, binary: fake.binary, onError: (e) => errors.push(e) })!;
  t.ok(n);
  t.equal(await n.ready('member a1 running'), true);
  t.equal(await n.watchdog(), true);
  t.equal(await n.stopping(), true);
  t.same(fake.calls(), ['/run/test/notify|READY=1 STATUS=member a1 running', '/run/test/notify|WATCHDOG=1', '/run/test/notify|STOPPING=1']);
  t.same(errors, []);
});

t.test('failures are reported once through onError and never thrown', async (t) => {
  const dir = t.testdir({});
  const errors: SdNotifyError[] = [];
  const onError = (e: SdNotifyError): void => void errors.push(e);

  const missing = SdNotifier.fromEnv({ env: { NOTIFY_SOCKET: '/x' }, binary: join(dir, 'no-such-binary'), onError })!;
  t.equal(await missing.ready(), false);
  t.equal(errors.length, 1, 'one error for a binary that does not exist');
  t.equal(errors[0]!.code, 'ERR_SD_NOTIFY');
  t.match(errors[0]!.message, /ENOENT/);

  const failing = fakeNotify(join(dir), 'echo "No such file or directory" >&2; exit 1');
  const f = SdNotifier.fromEnv({ env: { NOTIFY_SOCKET: '/x' }, binary: failing.binary, onError })!;
  t.equal(await f.watchdog(), false);
  t.equal(errors.length, 2);
  t.match(errors[1]!.message, /WATCHDOG=1 failed \(exit 1\): No such file or directory/);

  t.equal(await f.send(['READY=1\nMAINPID=1']), false, 'a field that would smuggle a second line is refused');
  t.equal(errors.length, 3);
  t.match(errors[2]!.message, /not KEY=VALUE on one line/);
  t.equal(failing.calls().length, 1, 'the refused field never reached the binary');
});

t.test('watchdog interval: half of WATCHDOG_USEC, only for the process WATCHDOG_PID names', async (t) => {
  t.equal(watchdogIntervalMs({}, 10), null);
  t.equal(watchdogIntervalMs({ WATCHDOG_USEC: '60000000' }, 10), 30_000);
  t.equal(watchdogIntervalMs({ WATCHDOG_USEC: '60000000', WATCHDOG_PID: '10' }, 10), 30_000);
  t.equal(watchdogIntervalMs({ WATCHDOG_USEC: '60000000', WATCHDOG_PID: '11' }, 10), null, 'inherited from a parent');
  t.equal(watchdogIntervalMs({ WATCHDOG_USEC: '0' }, 10), null);
  t.equal(watchdogIntervalMs({ WATCHDOG_USEC: '-5' }, 10), null);
  t.equal(watchdogIntervalMs({ WATCHDOG_USEC: 'soon' }, 10), null);
  t.equal(watchdogIntervalMs({ WATCHDOG_USEC: '1' }, 10), 1, 'never a zero interval');
});

t.test('startWatchdog pings repeatedly until stopping()', async (t) => {
  const fake = fakeNotify(t.testdir({}));
  const n = SdNotifier.fromEnv({ env: { NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '40000', WATCHDOG_PID: String(process.pid) }, binary: fake.binary })!;
  t.equal(n.watchdogIntervalMs, 20);
  n.startWatchdog();
  n.startWatchdog(); // idempotent: still one timer
  // Wait for pings by their effect (the log), not by a fixed sleep.
  for (let i = 0; i < 500 && fake.calls().filter((c) => c.endsWith('WATCHDOG=1')).length < 3; i++) await new Promise((r) => setTimeout(r, 20));
  t.ok(fake.calls().filter((c) => c.endsWith('WATCHDOG=1')).length >= 3, 'at least three pings');
  await n.stopping();
  // Any ping already spawned may still land; after that, none.
  await new Promise((r) => setTimeout(r, 200));
  const after = fake.calls().length;
  await new Promise((r) => setTimeout(r, 200));
  t.equal(fake.calls().length, after, 'no pings after STOPPING=1');
  t.ok(fake.calls().includes('/x|STOPPING=1'));
});

t.test('without WATCHDOG_USEC startWatchdog does nothing', async (t) => {
  const fake = fakeNotify(t.testdir({}));
  const n = SdNotifier.fromEnv({ env: { NOTIFY_SOCKET: '/x' }, binary: fake.binary })!;
  t.equal(n.watchdogIntervalMs, null);
  n.startWatchdog();
  n.stopWatchdog();
  t.same(fake.calls(), []);
});
