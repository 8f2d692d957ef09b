/**
 * PartitionMachine: entries as Raft commits them, with client sessions that make a retried command apply once.
 */
import t from 'tap';
import { fromBase64, toBase64, toHex } from '../../src/partitions/bytes.js';
import type { CommandResult } from '../../src/partitions/commands.js';
import { decodeEntry, encodeEntry, PartitionMachine, type PartitionEntry, type SessionTag } from '../../src/partitions/machine.js';
import { MemoryPartitionStore } from '../../src/partitions/memory-store.js';
import { Random } from '../../src/lib/random.js';
import { LIMITS } from '../../src/lib/limits.js';
import { b, s } from './helpers.js';

class Log {
  next = 1;
  constructor(readonly machine: PartitionMachine) {}
  apply(entry: PartitionEntry | Uint8Array): { result: CommandResult | undefined; duplicate: boolean } {
    return this.machine.apply(this.next++, entry instanceof Uint8Array ? entry : encodeEntry(entry));
  }
}

const put = (key: string, value: string, session?: SessionTag): PartitionEntry => ({
  command: { type: 'put', collection: 'd', key, value: b(value), nowMs: 1000 },
  ...(session ? { session } : {}),
});

function version(m: PartitionMachine, key: string): number | undefined {
  const r = m.state.get('d', key);
  return r.ok && r.found ? r.version : undefined;
}

t.test('base64 round-trips every length, and refuses anything not canonical', async (t) => {
  const random = Random.fromSeed(7);
  for (let n = 0; n < 70; n++) {
    const bytes = new Uint8Array(n).map(() => random.int(256));
    const text = toBase64(bytes);
    t.equal(text, Buffer.from(bytes).toString('base64'), `length ${n} as Node writes it`);
    t.equal(toHex(fromBase64(text)!), toHex(bytes));
  }
  for (const bad of ['A', 'AB', 'A===', 'AB=C', 'QQ', 'QR==', '@AAA', 'AAAA=']) t.equal(fromBase64(bad), undefined, bad);
});

t.test('an entry round-trips with its bytes; malformed entries are refused with ERR_ENTRY_DECODE', async (t) => {
  const entry: PartitionEntry = {
    command: { type: 'txn', compares: [{ collection: 'd', key: 'k', kind: 'value', value: new Uint8Array([0, 255, 1]) }], ops: [{ type: 'enqueue', queue: 'q', value: b('x') }], nowMs: 5 },
    session: { client: 'agent-1/boot', seq: 3, acked: 2 },
  };
  t.same(decodeEntry(encodeEntry(entry)), entry);
  const enc = (text: string): Uint8Array => new TextEncoder().encode(text);
  for (const [bad, why] of [
    [enc('{'), 'not JSON'],
    [new Uint8Array([0xff, 0xfe]), 'not UTF-8'],
    [enc('{"command":{}}'), 'no type'],
    [enc('{"command":{"type":"put","value":{"$b64":"QR=="}}}'), 'non-canonical base64'],
    [enc('{"command":{"type":"put"},"session":{"client":"c","seq":1,"acked":2}}'), 'acked above seq'],
    [enc('{"command":{"type":"put"},"session":{"client":"","seq":1,"acked":1}}'), 'empty client'],
    [enc('{"command":{"type":"put"},"session":{"client":"c","seq":1.5,"acked":1}}'), 'fractional seq'],
  ] as const) {
    t.throws(() => decodeEntry(bad), { code: 'ERR_ENTRY_DECODE' }, why);
  }
});

t.test('a malformed entry applies as a failure on every replica and moves the applied index', async (t) => {
  const log = new Log(PartitionMachine.open(new MemoryPartitionStore()));
  const r = log.apply(new TextEncoder().encode('garbage'));
  t.match(r.result, { ok: false, code: 'ERR_ENTRY_DECODE' });
  t.equal(log.machine.appliedIndex, 1);
  t.match(log.apply(put('k', 'v')).result, { ok: true, version: 2 });
});

t.test('a retried command answers its first result and applies once', async (t) => {
  const log = new Log(PartitionMachine.open(new MemoryPartitionStore()));
  const first = log.apply(put('k', 'v1', { client: 'c', seq: 1, acked: 1 }));
  t.match(first, { result: { ok: true, version: 1 }, duplicate: false });
  const retry = log.apply(put('k', 'v1', { client: 'c', seq: 1, acked: 1 }));
  t.same(retry, { result: first.result, duplicate: true });
  t.equal(version(log.machine, 'k'), 1, 'the retry wrote nothing');
  t.equal(log.machine.appliedIndex, 2, 'but the index moved');
  // A failure is recorded too: its retry gets the same failure, even if it would succeed now.
  const cond = log.apply({ command: { type: 'put', collection: 'd', key: 'k', value: b('v2'), condition: { kind: 'absent' } }, session: { client: 'c', seq: 2, acked: 2 } });
  t.match(cond.result, { ok: false, code: 'ERR_CONDITION_FAILED' });
  log.apply({ command: { type: 'delete', collection: 'd', key: 'k' } });
  t.same(log.apply({ command: { type: 'put', collection: 'd', key: 'k', value: b('v2'), condition: { kind: 'absent' } }, session: { client: 'c', seq: 2, acked: 2 } }), { result: cond.result, duplicate: true });
  t.equal(version(log.machine, 'k'), undefined);
});

t.test('a retried dequeue gets the same item and lease; the item is not delivered twice', async (t) => {
  const log = new Log(PartitionMachine.open(new MemoryPartitionStore()));
  log.apply({ command: { type: 'enqueue', queue: 'q', value: b('one'), nowMs: 10 } });
  log.apply({ command: { type: 'enqueue', queue: 'q', value: b('two'), nowMs: 10 } });
  const deq = (seq: number): PartitionEntry => ({ command: { type: 'dequeue', queue: 'q', leaseMs: 60_000, nowMs: 20 }, session: { client: 'w', seq, acked: seq } });
  const a = log.apply(deq(1));
  const again = log.apply(deq(1));
  t.same(again, { result: a.result, duplicate: true });
  t.match(a.result, { ok: true, item: { value: b('one'), deliveries: 1 } });
  t.match(log.apply(deq(2)).result, { ok: true, item: { value: b('two') } }, 'the next dequeue skips the leased item');
  t.equal(s((a.result as { item: { value: Uint8Array } }).item.value), 'one');
});

t.test('many commands of one session in flight, applied in any order, each exactly once', async (t) => {
  const random = Random.fromSeed(11);
  const log = new Log(PartitionMachine.open(new MemoryPartitionStore()));
  const seqs = Array.from({ length: 64 }, (_, i) => i + 1);
  const order = [...seqs, ...seqs.filter(() => random.int(3) === 0)];
  for (let i = order.length - 1; i > 0; i--) {
    const j = random.int(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const applied = new Map<number, CommandResult | undefined>();
  for (const seq of order) {
    const r = log.apply({ command: { type: 'enqueue', queue: 'q', value: b(String(seq)) }, session: { client: 'c', seq, acked: 1 } });
    if (applied.has(seq)) t.same(r, { result: applied.get(seq), duplicate: true });
    else applied.set(seq, r.result);
  }
  t.equal(log.machine.state.queueLength('q'), 64, 'one item per seq');
});

t.test('acknowledged results are forgotten; older seqs and seqs past the window are refused', async (t) => {
  const store = new MemoryPartitionStore();
  const log = new Log(PartitionMachine.open(store));
  for (let seq = 1; seq <= 5; seq++) log.apply(put(`k${seq}`, 'v', { client: 'c', seq, acked: 1 }));
  t.equal(store.metaKeys('result/').length, 5);
  log.apply(put('k6', 'v', { client: 'c', seq: 6, acked: 4 }));
  t.same(store.metaKeys('result/').map((k) => Number(k.split('/').at(-1))), [4, 5, 6], 'results below acked were deleted in the same apply');
  t.match(log.apply(put('k2', 'again', { client: 'c', seq: 2, acked: 2 })).result, { ok: false, code: 'ERR_SESSION_WINDOW' });
  t.match(log.apply(put('k4', 'again', { client: 'c', seq: 4, acked: 4 })), { duplicate: true }, 'a seq at acked still answers');
  const far = 4 + LIMITS.partitionSessionWindowCommands;
  t.match(log.apply(put('far', 'v', { client: 'c', seq: far, acked: 4 })).result, { ok: false, code: 'ERR_SESSION_WINDOW' });
  t.equal(version(log.machine, 'far'), undefined);
  t.match(log.apply(put('near', 'v', { client: 'c', seq: far - 1, acked: 4 })).result, { ok: true });
});

t.test('the table is bounded: the least recently used session is forgotten, and its next retry is refused', async (t) => {
  const store = new MemoryPartitionStore();
  const log = new Log(PartitionMachine.open(store, { maxSessions: 2 }));
  log.apply(put('a', '1', { client: 'A', seq: 1, acked: 1 }));
  log.apply(put('b', '1', { client: 'B', seq: 1, acked: 1 }));
  log.apply(put('a', '2', { client: 'A', seq: 2, acked: 2 })); // A is now the most recent
  log.apply(put('c', '1', { client: 'C', seq: 1, acked: 1 })); // forgets B
  t.equal(log.machine.sessionCount, 2);
  t.same(store.metaKeys('session/'), ['session/A', 'session/C']);
  t.same(store.metaKeys('result/').filter((k) => k.startsWith('result/B/')), [], 'B\'s results went with it');
  t.match(log.apply(put('b', '2', { client: 'B', seq: 2, acked: 2 })).result, { ok: false, code: 'ERR_SESSION_EXPIRED' });
  t.equal(s((log.machine.state.get('d', 'b') as { value: Uint8Array }).value), '1');
  t.match(log.apply(put('a', '3', { client: 'A', seq: 2, acked: 2 })), { duplicate: true }, 'A is still remembered');
});

t.test('sessions survive a snapshot and a reopen: a retry after restore is still a duplicate', async (t) => {
  const store = new MemoryPartitionStore();
  const log = new Log(PartitionMachine.open(store, { maxSessions: 3 }));
  for (const client of ['A', 'B', 'C']) log.apply(put(client, '1', { client, seq: 1, acked: 1 }));
  log.apply(put('A', '2', { client: 'A', seq: 2, acked: 1 }));
  const copy = MemoryPartitionStore.fromSnapshot(store.snapshot());
  const restored = new Log(PartitionMachine.open(copy, { maxSessions: 3 }));
  restored.next = log.next;
  t.equal(restored.machine.sessionCount, 3);
  t.match(restored.apply(put('A', '1', { client: 'A', seq: 1, acked: 1 })), { duplicate: true });
  t.match(restored.apply(put('B', '1', { client: 'B', seq: 1, acked: 1 })), { duplicate: true });
  // The order of use came back too (a duplicate does not count as a use): B, then C, then A. A new client forgets B.
  restored.apply(put('D', '1', { client: 'D', seq: 1, acked: 1 }));
  t.same(copy.metaKeys('session/'), ['session/A', 'session/C', 'session/D']);
  t.match(restored.apply(put('B', '2', { client: 'B', seq: 2, acked: 2 })).result, { ok: false, code: 'ERR_SESSION_EXPIRED' });
});

t.test('replicas fed the same entries hold byte-identical state, sessions included', async (t) => {
  const random = Random.fromSeed(99);
  const stores = [new MemoryPartitionStore(), new MemoryPartitionStore()];
  const logs = stores.map((st) => new Log(PartitionMachine.open(st, { maxSessions: 4 })));
  const acked = new Map<string, number>();
  for (let i = 0; i < 400; i++) {
    const client = `c${random.int(6)}`;
    const low = acked.get(client) ?? 1;
    const seq = low + random.int(5);
    if (random.int(4) === 0) acked.set(client, seq);
    const command = random.int(3) === 0
      ? { type: 'dequeue' as const, queue: 'q', leaseMs: 100, nowMs: i * 10 }
      : random.int(2) === 0 ? { type: 'enqueue' as const, queue: 'q', value: b(`v${i}`), nowMs: i * 10 } : { type: 'put' as const, collection: 'd', key: `k${random.int(10)}`, value: b(`v${i}`), nowMs: i * 10 };
    const bytes = encodeEntry({ command, session: { client, seq, acked: Math.min(low, seq) } });
    const results = logs.map((l) => l.apply(bytes));
    t.same(results[0], results[1]);
  }
  t.equal(toHex(stores[0]!.snapshot()), toHex(stores[1]!.snapshot()));
});
