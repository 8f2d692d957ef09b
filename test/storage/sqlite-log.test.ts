import t from 'tap';
import fc from 'fast-check';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { SqliteLogDatabase } from '../../src/storage/index.js';
import { MemoryLogStorage } from '../../src/consensus/storage.js';
import type { Entry } from '../../src/consensus/types.js';

const enc = (s: string) => new TextEncoder().encode(s);
const entry = (index: number, term: number, data = `e${index}`): Entry => ({ index, term, type: 'normal', data: enc(data) });

t.test('entries, hard state and snapshot survive a reopen exactly', async (t) => {
  const file = join(t.testdir({}), 'raft.db');
  const db = new SqliteLogDatabase(file);
  const log = db.openGroup('cluster');
  t.same(log.initialState().hardState, { term: 0, vote: undefined, commit: 0 });
  log.save({ entries: [entry(1, 1), entry(2, 1), { index: 3, term: 2, type: 'conf', data: new Uint8Array(), conf: { type: 'addVoter', member: 'n2' } }, { index: 4, term: 2, type: 'normal', data: enc('x'), request: { clientId: 'c', seq: 7 } }], hardState: { term: 2, vote: 'n1', commit: 3 } });
  t.equal(log.lastIndex(), 4);
  db.close();
  const again = new SqliteLogDatabase(file).openGroup('cluster');
  t.same(again.hardState(), { term: 2, vote: 'n1', commit: 3 });
  t.same(again.entries(1, 5, Infinity).map((e) => [e.index, e.term, e.type]), [[1, 1, 'normal'], [2, 1, 'normal'], [3, 2, 'conf'], [4, 2, 'normal']]);
  t.same(again.entries(3, 5, Infinity)[0]!.conf, { type: 'addVoter', member: 'n2' });
  t.same(again.entries(4, 5, Infinity)[0]!.request, { clientId: 'c', seq: 7 });
  t.equal(new TextDecoder().decode(again.entries(2, 3, Infinity)[0]!.data), 'e2');
});

t.test('a new leader overwrites a conflicting suffix; snapshots compact the log; groups are separate', async (t) => {
  const file = join(t.testdir({}), 'raft.db');
  const db = new SqliteLogDatabase(file);
  const a = db.openGroup('a');
  const b = db.openGroup('b');
  a.save({ entries: [1, 2, 3, 4, 5].map((i) => entry(i, 1)), hardState: { term: 1, vote: undefined, commit: 2 } });
  b.save({ entries: [entry(1, 9)], hardState: { term: 9, vote: 'x', commit: 1 } });
  a.save({ entries: [entry(3, 2, 'new3'), entry(4, 2, 'new4')] });
  t.equal(a.lastIndex(), 4, 'entries after the overwritten ones are gone');
  a.save({ hardState: { term: 2, vote: undefined, commit: 4 } });
  a.createSnapshot(3, { voters: ['n1'], learners: [] }, enc('state@3'));
  a.compact(3);
  t.equal(a.firstIndex(), 4);
  db.close();
  const db2 = new SqliteLogDatabase(file);
  const a2 = db2.openGroup('a');
  t.equal(a2.firstIndex(), 4);
  t.equal(a2.lastIndex(), 4);
  t.equal(a2.term(3), 2, 'the snapshot answers for its own index');
  t.equal(new TextDecoder().decode(a2.entries(4, 5, Infinity)[0]!.data), 'new4');
  t.same(a2.snapshot().metadata, { index: 3, term: 2, conf: { voters: ['n1'], learners: [] } });
  t.throws(() => a2.entries(2, 4, Infinity), { code: 'ERR_RAFT_COMPACTED' });
  const b2 = db2.openGroup('b');
  t.same(b2.hardState(), { term: 9, vote: 'x', commit: 1 });
  // Installing a leader's snapshot replaces the whole log.
  a2.save({ snapshot: { metadata: { index: 10, term: 3, conf: { voters: ['n1', 'n2'], learners: [] } }, data: enc('state@10') }, hardState: { term: 3, vote: undefined, commit: 10 } });
  db2.close();
  const a3 = new SqliteLogDatabase(file).openGroup('a');
  t.same([a3.firstIndex(), a3.lastIndex(), a3.hardState().commit], [11, 10, 10]);
});

t.test('corruption is detected on open: committed damage is fatal, an uncommitted tail is cut only when allowed', async (t) => {
  const file = join(t.testdir({}), 'raft.db');
  const db = new SqliteLogDatabase(file);
  db.openGroup('g').save({ entries: [1, 2, 3, 4].map((i) => entry(i, 1)), hardState: { term: 1, vote: undefined, commit: 2 } });
  db.close();
  const raw = new Database(file);
  raw.prepare("UPDATE raft_entries SET data = X'00' WHERE group_id = 'g' AND idx = 4").run();
  raw.close();
  t.throws(() => new SqliteLogDatabase(file).openGroup('g'), { code: 'ERR_STORAGE_CORRUPT', message: /group "g"\) is corrupt: entry 4 fails its checksum in the uncommitted tail \(after commit index 2\)/ });
  const repaired = new SqliteLogDatabase(file).openGroup('g', { truncateCorruptTail: true });
  t.equal(repaired.lastIndex(), 3, 'the corrupt uncommitted tail was cut off');
  const raw2 = new Database(file);
  raw2.prepare("UPDATE raft_entries SET term = 7 WHERE group_id = 'g' AND idx = 2").run();
  raw2.close();
  t.throws(() => new SqliteLogDatabase(file).openGroup('g', { truncateCorruptTail: true }), { code: 'ERR_STORAGE_CORRUPT', message: /entry 2 fails its checksum, at or below the commit index 2: committed data is damaged/ });
  const raw3 = new Database(file);
  raw3.prepare("UPDATE raft_entries SET term = 1 WHERE group_id = 'g' AND idx = 2").run();
  raw3.prepare("DELETE FROM raft_entries WHERE group_id = 'g' AND idx = 2").run();
  raw3.close();
  t.throws(() => new SqliteLogDatabase(file).openGroup('g'), { code: 'ERR_STORAGE_CORRUPT', message: /entry 2 is missing/ });
  const raw4 = new Database(file);
  raw4.prepare("UPDATE raft_state SET commit_idx = 3 WHERE group_id = 'g'").run();
  raw4.close();
  t.throws(() => new SqliteLogDatabase(file).openGroup('g'), { code: 'ERR_STORAGE_CORRUPT', message: /hard state .* fails its checksum/ });
});

t.test('a full disk is a typed error; nothing of the failed write is kept, earlier writes are intact', async (t) => {
  const file = join(t.testdir({}), 'raft.db');
  const db = new SqliteLogDatabase(file, { maxPageCount: 40 });
  const log = db.openGroup('g');
  log.save({ entries: [entry(1, 1)], hardState: { term: 1, vote: undefined, commit: 1 } });
  const big = 'x'.repeat(64 * 1024);
  let err: unknown;
  let index = 2;
  for (; index < 100; index++) {
    try {
      log.save({ entries: [entry(index, 1, big)], hardState: { term: 1, vote: undefined, commit: index } });
    } catch (e) {
      err = e;
      break;
    }
  }
  t.match(err, { code: 'ERR_STORAGE_FULL', message: /cannot grow: the disk is full \(nothing of this write was kept/ });
  t.equal(log.lastIndex(), index - 1, 'the mirror did not take the failed write');
  t.equal(log.hardState().commit, index - 1);
  db.close();
  const reopened = new SqliteLogDatabase(file).openGroup('g');
  t.equal(reopened.lastIndex(), index - 1, 'nor did the disk');
  t.equal(reopened.hardState().commit, index - 1);
});

t.test('opening a file that is not a database names the file', async (t) => {
  const dir = t.testdir({ 'junk.db': 'this is not sqlite'.repeat(100) });
  t.throws(() => new SqliteLogDatabase(join(dir, 'junk.db')), { code: 'ERR_STORAGE', message: /junk\.db: open failed/ });
});

t.test('property: the SQLite log reads exactly like the in-memory log, across reopens', async (t) => {
  const dir = t.testdir({});
  let n = 0;
  fc.assert(fc.property(fc.array(fc.record({ back: fc.nat(3), count: fc.integer({ min: 1, max: 4 }), term: fc.integer({ min: 1, max: 5 }), reopen: fc.boolean() }), { minLength: 1, maxLength: 15 }), (ops) => {
    const file = join(dir, `p${n++}.db`);
    let db = new SqliteLogDatabase(file);
    let log = db.openGroup('g');
    const mem = new MemoryLogStorage();
    let term = 1;
    for (const op of ops) {
      term = Math.max(term, op.term);
      const from = Math.max(1, mem.lastIndex() + 1 - op.back);
      const entries = Array.from({ length: op.count }, (_, i) => entry(from + i, term, `${from + i}@${term}`));
      log.save({ entries, hardState: { term, vote: undefined, commit: 0 } });
      mem.append(entries);
      if (op.reopen) {
        db.close();
        db = new SqliteLogDatabase(file);
        log = db.openGroup('g');
      }
      if (log.lastIndex() !== mem.lastIndex()) return false;
      const a = log.entries(1, log.lastIndex() + 1, Infinity).map((e) => `${e.index}:${e.term}:${new TextDecoder().decode(e.data)}`);
      const b = mem.entries(1, mem.lastIndex() + 1, Infinity).map((e) => `${e.index}:${e.term}:${new TextDecoder().decode(e.data)}`);
      if (a.join() !== b.join()) return false;
    }
    db.close();
    return true;
  }), { numRuns: 60 });
  t.pass();
});

t.test('acknowledged writes survive SIGKILL of the writing process', async (t) => {
  const file = join(t.testdir({}), 'raft.db');
  const writer = fileURLToPath(new URL('./fixtures/writer.ts', import.meta.url));
  const child = spawn(process.execPath, [...process.execArgv, writer, file], { stdio: ['ignore', 'pipe', 'inherit'] });
  let acked = 0;
  await new Promise<void>((resolve) => {
    child.stdout.on('data', (d: Buffer) => {
      for (const line of d.toString().split('\n')) if (/^\d+$/.test(line)) acked = Math.max(acked, Number(line));
      if (acked >= 200 && child.exitCode === null) {
        child.kill('SIGKILL');
        resolve();
      }
    });
  });
  await new Promise((r) => child.on('exit', r));
  const log = new SqliteLogDatabase(file).openGroup('g');
  t.ok(log.lastIndex() >= acked, `every acknowledged entry is there (acked ${acked}, found ${log.lastIndex()})`);
  t.equal(log.hardState().commit, log.lastIndex(), 'the hard state written with them is consistent');
});
