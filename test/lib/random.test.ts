import t from 'tap';
import fc from 'fast-check';
import { Random, seedToUint32 } from '../../src/lib/random.js';

t.test('the same seed gives the same stream; different seeds differ', async (t) => {
  const a = Random.fromSeed(42);
  const b = Random.fromSeed(42);
  const c = Random.fromSeed(43);
  const sa = Array.from({ length: 100 }, () => a.nextUint32());
  const sb = Array.from({ length: 100 }, () => b.nextUint32());
  const sc = Array.from({ length: 100 }, () => c.nextUint32());
  t.same(sa, sb);
  t.not(JSON.stringify(sa), JSON.stringify(sc));
});

t.test('state round-trips: a restored generator continues the same stream', async (t) => {
  const a = Random.fromSeed('replay me');
  for (let i = 0; i < 17; i++) a.nextUint32();
  const b = Random.fromState(a.state());
  t.same(Array.from({ length: 50 }, () => a.float()), Array.from({ length: 50 }, () => b.float()));
  t.throws(() => Random.fromState([0, 0, 0, 0]), { code: 'ERR_INVARIANT' });
  t.throws(() => Random.fromState([1, 2, 3] as unknown as [number, number, number, number]), { code: 'ERR_INVARIANT' });
});

t.test('split streams are independent of later draws on the parent', async (t) => {
  const p1 = Random.fromSeed(7);
  const p2 = Random.fromSeed(7);
  const c1 = p1.split();
  const c2 = p2.split();
  p1.nextUint32(); // drawing more from one parent must not change its child
  t.same(Array.from({ length: 20 }, () => c1.int(1000)), Array.from({ length: 20 }, () => c2.int(1000)));
});

t.test('ranges and distributions stay in bounds', async (t) => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 40 }), fc.integer({ min: 1, max: 1000 }), (seed, bound) => {
    const r = Random.fromSeed(seed);
    for (let i = 0; i < 20; i++) {
      const x = r.int(bound);
      if (!(Number.isInteger(x) && x >= 0 && x < bound)) return false;
      const f = r.float();
      if (!(f >= 0 && f < 1)) return false;
      const y = r.intBetween(-5, 5);
      if (y < -5 || y > 5) return false;
    }
    return true;
  }));
  const r = Random.fromSeed(1);
  t.equal(r.chance(0), false);
  t.equal(r.chance(1), true);
  t.throws(() => r.int(0), { code: 'ERR_INVARIANT' });
  t.throws(() => r.pick([]), { code: 'ERR_INVARIANT' });
  t.throws(() => seedToUint32(-1), { code: 'ERR_INVARIANT' });
  const shuffled = r.shuffle([1, 2, 3, 4, 5]);
  t.same([...shuffled].sort(), [1, 2, 3, 4, 5]);
  t.match(r.hex(4), /^[0-9a-f]{8}$/);
  const mean = Array.from({ length: 20000 }, () => r.exponential(10)).reduce((s, x) => s + x, 0) / 20000;
  t.ok(mean > 9 && mean < 11, `exponential mean ${mean} is near 10`);
  const buckets = new Array(10).fill(0);
  for (let i = 0; i < 100000; i++) buckets[r.int(10)]++;
  t.ok(buckets.every((b) => b > 9500 && b < 10500), `int(10) is uniform: ${buckets.join(',')}`);
});
