/**
 * Partitioning schemes (src/partitions/scheme.ts) and the key hash (src/partitions/hash.ts): XXH64 against published
 * vectors, uniform ranges that tile the int64 space for every partition count, and the typed errors of partitionFor.
 */
import t from 'tap';
import { LIMITS } from '../../src/lib/limits.js';
import { encodeUtf8 } from '../../src/partitions/bytes.js';
import { keyPosition, xxh64 } from '../../src/partitions/hash.js';
import {
  INT64_MAX, INT64_MIN, gatewayPartitionKey, parseInt64, partitionCount, partitionFor, partitionsOf, uniformPartitionOf, uniformRange, validateScheme,
  type PartitionKey, type PartitionScheme,
} from '../../src/partitions/scheme.js';

t.test('XXH64 matches the reference vectors (every input length path: <4, 4-7, 8-31, 32+)', async (t) => {
  const vectors: [string, bigint, bigint][] = [
    ['', 0n, 0xef46db3751d8e999n],
    ['a', 0n, 0xd24ec4f1a98c6e5bn],
    ['abc', 0n, 0x44bc2cf5ad770999n],
    ['ABC', 0n, 0xe66ae7354fcfee98n],
    ['xxhash', 0n, 0x32dd38952c4bc720n],
    ['123456789012345', 0n, 0xc377d78ade001a3cn],
    ['1234567890123456', 0n, 0xb61c33dc6c59f270n],
    ['abcdefghijklmnopqrstuvwxyz12345', 0n, 0x467605901b01d6f6n],
    ['1234567890123456789012345678901', 0n, 0x8f367cb873a5376en],
    ['12345678901234567890123456789012', 0n, 0x40fd1aa52d98274cn],
    ['Nobody inspects the spammish repetition', 0n, 0xfbcea83c8a378bf1n],
    ['The quick brown fox jumps over the lazy dog', 0n, 0x0b242d361fda71bcn],
    ['abc', 5381n, 0x19d1c1b5c673451fn],
    ['12345678901234567890123456789012', 5381n, 0x38ea26e7c55f8095n],
  ];
  for (const [text, seed, want] of vectors) t.equal(xxh64(encodeUtf8(text), seed), want, `XXH64(${JSON.stringify(text)}, ${seed})`);
  // A view into a larger buffer hashes its own bytes only.
  const big = encodeUtf8('__abc__');
  t.equal(xxh64(big.subarray(2, 5)), 0x44bc2cf5ad770999n);
  t.equal(keyPosition(''), BigInt.asIntN(64, 0xef46db3751d8e999n), 'a key\'s position is its hash read as a signed int64');
  t.equal(keyPosition('a'), -3292477735350538661n);
});

t.test('uniform ranges tile the int64 space with no gap or overlap, for every partition count up to the limit', async (t) => {
  let failures = 0;
  for (let n = 1; n <= LIMITS.partitionsMaxPerService; n++) {
    let expectLow = INT64_MIN;
    let minSize: bigint | undefined;
    let maxSize = 0n;
    for (let i = 0; i < n; i++) {
      const { low, high } = uniformRange(n, i);
      const size = high - low + 1n;
      if (low !== expectLow || high < low) failures++;
      if (uniformPartitionOf(n, low) !== i || uniformPartitionOf(n, high) !== i) failures++;
      minSize = minSize === undefined || size < minSize ? size : minSize;
      maxSize = size > maxSize ? size : maxSize;
      expectLow = high + 1n;
    }
    if (expectLow !== INT64_MAX + 1n) failures++;
    if (maxSize - minSize! > 1n) failures++;
    if (failures > 0) {
      t.fail(`partition count ${n} breaks the tiling`);
      break;
    }
  }
  t.equal(failures, 0, `counts 1..${LIMITS.partitionsMaxPerService}: contiguous from INT64_MIN to INT64_MAX, sizes within one, bounds map back`);
  t.same(uniformRange(1, 0), { low: INT64_MIN, high: INT64_MAX });
  t.same(uniformRange(2, 0), { low: INT64_MIN, high: -1n });
  t.same(uniformRange(2, 1), { low: 0n, high: INT64_MAX });
  t.same(uniformRange(4, 1), { low: -(2n ** 62n), high: -1n });
  t.throws(() => uniformRange(4, 4), { code: 'ERR_INVARIANT' });
  t.throws(() => uniformPartitionOf(4, INT64_MAX + 1n), { code: 'ERR_INVARIANT' });
});

t.test('partitionsOf describes each partition as a task is told about it', async (t) => {
  t.same(partitionsOf({ kind: 'uniform', partitions: 2 }), [
    { partition: 0, kind: 'uniform', low: '-9223372036854775808', high: '-1' },
    { partition: 1, kind: 'uniform', low: '0', high: '9223372036854775807' },
  ]);
  t.same(partitionsOf({ kind: 'named', names: ['eu', 'us'] }), [{ partition: 0, kind: 'named', name: 'eu' }, { partition: 1, kind: 'named', name: 'us' }]);
  t.same(partitionsOf({ kind: 'singleton' }), [{ partition: 0, kind: 'singleton' }]);
  t.equal(partitionCount({ kind: 'named', names: ['a', 'b', 'c'] }), 3);
  // Three partitions do not divide 2^64: the last range is one longer (floor(i * 2^64 / 3) - 2^63 starts each).
  const [a, b, c] = partitionsOf({ kind: 'uniform', partitions: 3 }) as { low: string; high: string }[];
  t.same([a!.low, a!.high, b!.low, b!.high, c!.low, c!.high], [
    '-9223372036854775808', '-3074457345618258604', '-3074457345618258603', '3074457345618258601', '3074457345618258602', '9223372036854775807',
  ]);
  const size = (p: { low: string; high: string }): bigint => BigInt(p.high) - BigInt(p.low) + 1n;
  t.same([size(a!), size(b!), size(c!)], [6148914691236517205n, 6148914691236517205n, 6148914691236517206n]);
});

t.test('string keys spread evenly, even keys that differ in their last character only', async (t) => {
  const scheme: PartitionScheme = { kind: 'uniform', partitions: 16 };
  const counts = new Array<number>(16).fill(0);
  for (let i = 0; i < 16_000; i++) {
    const r = partitionFor(scheme, { kind: 'key', key: `user-${i}` });
    if (!r.ok) throw new Error(r.message);
    counts[r.partition]!++;
  }
  t.ok(counts.every((c) => c > 800 && c < 1200), `each of 16 partitions holds 1000 ± 20% of 16000 keys: ${counts.join(' ')}`);
  const lastChar = new Set<number>();
  for (const ch of 'abcdefghijklmnopqrstuvwxyz') {
    const r = partitionFor(scheme, { kind: 'key', key: `order-${ch}` });
    if (r.ok) lastChar.add(r.partition);
  }
  t.ok(lastChar.size >= 10, `26 keys differing in one last character reach ${lastChar.size} of 16 partitions`);
  // Pinned: a key's partition is part of the on-disk format and must never change.
  t.same([0, 1, 2, 3].map((i) => partitionFor(scheme, { kind: 'key', key: `user-${i}` })), [
    partitionFor(scheme, { kind: 'int64', value: keyPosition('user-0') }),
    partitionFor(scheme, { kind: 'int64', value: keyPosition('user-1') }),
    partitionFor(scheme, { kind: 'int64', value: keyPosition('user-2') }),
    partitionFor(scheme, { kind: 'int64', value: keyPosition('user-3') }),
  ], 'a string key goes where its position goes');
  t.same(partitionFor(scheme, { kind: 'key', key: 'abc' }), { ok: true, partition: 12 }, 'XXH64("abc") = 0x44bc...: as int64 + 2^63 its top nibble is 0xc, partition 12 of 16');
});

t.test('partitionFor: every scheme and key kind, with typed errors', async (t) => {
  const uniform: PartitionScheme = { kind: 'uniform', partitions: 4 };
  const named: PartitionScheme = { kind: 'named', names: ['eu', 'us', 'asia'] };
  const singleton: PartitionScheme = { kind: 'singleton' };
  const cases: { name: string; scheme: PartitionScheme; key: PartitionKey; partition?: number; code?: string; limit?: string }[] = [
    { name: 'uniform, int64 at the bottom', scheme: uniform, key: { kind: 'int64', value: INT64_MIN }, partition: 0 },
    { name: 'uniform, int64 -1', scheme: uniform, key: { kind: 'int64', value: -1n }, partition: 1 },
    { name: 'uniform, int64 0', scheme: uniform, key: { kind: 'int64', value: 0n }, partition: 2 },
    { name: 'uniform, int64 at the top', scheme: uniform, key: { kind: 'int64', value: INT64_MAX }, partition: 3 },
    { name: 'uniform, int64 past the top', scheme: uniform, key: { kind: 'int64', value: INT64_MAX + 1n }, code: 'ERR_INVALID_ARGUMENT' },
    { name: 'uniform, a Named key', scheme: uniform, key: { kind: 'named', name: 'eu' }, code: 'ERR_WRONG_PARTITION_KIND' },
    { name: 'uniform, no key', scheme: uniform, key: { kind: 'singleton' }, code: 'ERR_WRONG_PARTITION_KIND' },
    { name: 'uniform, an empty key', scheme: uniform, key: { kind: 'key', key: '' }, code: 'ERR_INVALID_ARGUMENT' },
    { name: 'uniform, a lone surrogate', scheme: uniform, key: { kind: 'key', key: 'a\ud800' }, code: 'ERR_INVALID_ARGUMENT' },
    { name: 'uniform, a key over the limit', scheme: uniform, key: { kind: 'key', key: 'x'.repeat(LIMITS.partitionKeyMaxBytes + 1) }, code: 'ERR_PARTITION_LIMIT', limit: 'partitionKeyMaxBytes' },
    { name: 'uniform, a key at the limit', scheme: uniform, key: { kind: 'key', key: 'é'.repeat(LIMITS.partitionKeyMaxBytes / 2) }, partition: -1 },
    { name: 'uniform, a key over the limit in UTF-8 only', scheme: uniform, key: { kind: 'key', key: 'é'.repeat(LIMITS.partitionKeyMaxBytes / 2 + 1) }, code: 'ERR_PARTITION_LIMIT', limit: 'partitionKeyMaxBytes' },
    { name: 'named, a string key that is a name', scheme: named, key: { kind: 'key', key: 'us' }, partition: 1 },
    { name: 'named, a Named key', scheme: named, key: { kind: 'named', name: 'asia' }, partition: 2 },
    { name: 'named, an unknown name', scheme: named, key: { kind: 'key', key: 'mars' }, code: 'ERR_UNKNOWN_PARTITION_NAME' },
    { name: 'named, an unknown Named key', scheme: named, key: { kind: 'named', name: 'EU' }, code: 'ERR_UNKNOWN_PARTITION_NAME' },
    { name: 'named, an empty Named key', scheme: named, key: { kind: 'named', name: '' }, code: 'ERR_INVALID_ARGUMENT' },
    { name: 'named, an int64 key', scheme: named, key: { kind: 'int64', value: 5n }, code: 'ERR_WRONG_PARTITION_KIND' },
    { name: 'named, no key', scheme: named, key: { kind: 'singleton' }, code: 'ERR_WRONG_PARTITION_KIND' },
    { name: 'singleton, no key', scheme: singleton, key: { kind: 'singleton' }, partition: 0 },
    { name: 'singleton, any string key', scheme: singleton, key: { kind: 'key', key: 'cart-17' }, partition: 0 },
    { name: 'singleton, an int64 key', scheme: singleton, key: { kind: 'int64', value: 0n }, code: 'ERR_WRONG_PARTITION_KIND' },
    { name: 'singleton, a Named key', scheme: singleton, key: { kind: 'named', name: 'x' }, code: 'ERR_WRONG_PARTITION_KIND' },
  ];
  for (const c of cases) {
    const r = partitionFor(c.scheme, c.key);
    if (c.code === undefined) {
      t.ok(r.ok, c.name);
      if (r.ok && c.partition !== undefined && c.partition >= 0) t.equal(r.partition, c.partition, c.name);
    } else {
      t.equal(r.ok, false, c.name);
      if (!r.ok) {
        t.equal(r.code, c.code, `${c.name}: ${r.message}`);
        t.equal(r.field, 'partitionKey', `${c.name}: names the field`);
        if (c.limit) t.same({ limit: r.limit, max: r.max }, { limit: c.limit, max: LIMITS[c.limit as keyof typeof LIMITS] }, `${c.name}: names the limit`);
      }
    }
  }
  const wrong = partitionFor(named, { kind: 'int64', value: 1n });
  t.match(!wrong.ok && wrong.message, /partitioned named, which takes one of its names, as a string or Named key, not an Int64Range key/);
  const unknown = partitionFor(named, { kind: 'key', key: 'mars' });
  t.match(!unknown.ok && unknown.message, /"mars" is not a partition of this service; its partitions are "eu", "us", "asia"/);
});

t.test('validateScheme refuses bad schemes with the field and the limit', async (t) => {
  const cases: { scheme: PartitionScheme; code?: string; field?: string; limit?: string }[] = [
    { scheme: { kind: 'uniform', partitions: 1 } },
    { scheme: { kind: 'uniform', partitions: LIMITS.partitionsMaxPerService } },
    { scheme: { kind: 'uniform', partitions: 0 }, code: 'ERR_INVALID_ARGUMENT', field: 'state.partitions' },
    { scheme: { kind: 'uniform', partitions: 2.5 }, code: 'ERR_INVALID_ARGUMENT', field: 'state.partitions' },
    { scheme: { kind: 'uniform', partitions: LIMITS.partitionsMaxPerService + 1 }, code: 'ERR_PARTITION_LIMIT', field: 'state.partitions', limit: 'partitionsMaxPerService' },
    { scheme: { kind: 'named', names: ['a'] } },
    { scheme: { kind: 'named', names: [] }, code: 'ERR_INVALID_ARGUMENT', field: 'state.names' },
    { scheme: { kind: 'named', names: ['a', 'b', 'a'] }, code: 'ERR_INVALID_ARGUMENT', field: 'state.names[2]' },
    { scheme: { kind: 'named', names: ['a', ''] }, code: 'ERR_INVALID_ARGUMENT', field: 'state.names[1]' },
    { scheme: { kind: 'named', names: ['a', 'n'.repeat(LIMITS.partitionKeyMaxBytes + 1)] }, code: 'ERR_PARTITION_LIMIT', field: 'state.names[1]', limit: 'partitionKeyMaxBytes' },
    { scheme: { kind: 'named', names: Array.from({ length: LIMITS.partitionsMaxPerService + 1 }, (_, i) => `p${i}`) }, code: 'ERR_PARTITION_LIMIT', field: 'state.names', limit: 'partitionsMaxPerService' },
    { scheme: { kind: 'singleton' } },
  ];
  for (const c of cases) {
    const r = validateScheme(c.scheme);
    const label = `${c.scheme.kind} ${JSON.stringify(c.scheme).slice(0, 60)}`;
    if (!c.code) t.equal(r, undefined, label);
    else t.match(r, { ok: false, code: c.code, field: c.field, ...(c.limit ? { limit: c.limit } : {}) }, label);
  }
});

t.test('gateway partition keys and int64 parsing', async (t) => {
  t.same(gatewayPartitionKey(undefined, undefined), { kind: 'singleton' });
  t.same(gatewayPartitionKey(undefined, 'cart-1'), { kind: 'key', key: 'cart-1' });
  t.same(gatewayPartitionKey('Int64Range', '-42'), { kind: 'int64', value: -42n });
  t.same(gatewayPartitionKey('Named', 'eu'), { kind: 'named', name: 'eu' });
  t.match(gatewayPartitionKey('Named', undefined), { ok: false, code: 'ERR_INVALID_ARGUMENT', field: 'PartitionKey' });
  t.match(gatewayPartitionKey('Range', '1'), { ok: false, code: 'ERR_INVALID_ARGUMENT', field: 'PartitionKind' });
  t.match(gatewayPartitionKey('Int64Range', 'ten'), { ok: false, code: 'ERR_INVALID_ARGUMENT' });
  t.equal(parseInt64('9223372036854775807', 'k'), INT64_MAX);
  t.equal(parseInt64('-9223372036854775808', 'k'), INT64_MIN);
  t.equal(parseInt64('0', 'k'), 0n);
  for (const bad of ['9223372036854775808', '-9223372036854775809', '01', '+1', '1.0', '', ' 1', '-', '12345678901234567890']) {
    t.match(parseInt64(bad, 'k'), { ok: false, code: 'ERR_INVALID_ARGUMENT', field: 'k' }, `"${bad}" is refused`);
  }
});
