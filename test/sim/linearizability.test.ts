import t from 'tap';
import fc from 'fast-check';
import { checkLinearizable, kvModel, type Operation, type KvInput, type KvOutput } from '../../src/sim/linearizability.js';

type Op = Operation<KvInput, KvOutput>;
const put = (clientId: string, key: string, value: string, callMs: number, returnMs: number): Op => ({ clientId, input: { kind: 'put', key, value }, output: 'ok', callMs, returnMs });
const get = (clientId: string, key: string, output: string | null, callMs: number, returnMs: number): Op => ({ clientId, input: { kind: 'get', key }, output, callMs, returnMs });
const cas = (clientId: string, key: string, expect: string | null, value: string, output: boolean, callMs: number, returnMs: number): Op => ({ clientId, input: { kind: 'cas', key, expect, value }, output, callMs, returnMs });

t.test('linearizable histories are accepted', async (t) => {
  t.same(checkLinearizable(kvModel, []), { ok: true });
  t.same(checkLinearizable(kvModel, [put('a', 'x', '1', 0, 10), get('b', 'x', '1', 20, 30)]), { ok: true }, 'sequential');
  t.same(checkLinearizable(kvModel, [put('a', 'x', '1', 0, 10), get('b', 'x', null, 5, 15)]), { ok: true }, 'a concurrent read may miss the write');
  t.same(checkLinearizable(kvModel, [put('a', 'x', '1', 0, 10), get('b', 'x', '1', 5, 15)]), { ok: true }, 'or see it');
  t.same(checkLinearizable(kvModel, [put('a', 'x', '1', 0, 10), put('b', 'x', '2', 0, 10), get('c', 'x', '1', 20, 30)]), { ok: true }, 'concurrent writes in either order');
  t.same(checkLinearizable(kvModel, [put('a', 'x', '1', 0, Infinity), get('b', 'x', null, 20, 30), get('b', 'x', '1', 40, 50)]), { ok: true }, 'an unacknowledged write may take effect late');
  t.same(checkLinearizable(kvModel, [put('a', 'x', '1', 0, Infinity), get('b', 'x', null, 20, 30)]), { ok: true }, 'or never');
  t.same(checkLinearizable(kvModel, [cas('a', 'x', null, '1', true, 0, 10), cas('b', 'x', null, '2', false, 5, 15), get('c', 'x', '1', 20, 30)]), { ok: true }, 'one cas wins');
  t.same(checkLinearizable(kvModel, [put('a', 'x', '1', 0, 10), put('a', 'y', '2', 0, 10), get('b', 'y', '2', 20, 30), get('b', 'x', '1', 20, 30)]), { ok: true }, 'keys are independent');
});

t.test('known non-linearizable histories are refused, with the operations named', async (t) => {
  const stale = checkLinearizable(kvModel, [put('a', 'x', '1', 0, 10), get('b', 'x', null, 20, 30)]);
  t.equal(stale.ok, false, 'a stale read after a completed write');
  if (stale.ok === false) t.match(stale.operations.join('\n'), /b get\(x\) -> null \[20, 30\]/);
  t.equal(checkLinearizable(kvModel, [put('a', 'x', '1', 0, 10), put('b', 'x', '2', 0, 10), get('c', 'x', '3', 20, 30)]).ok, false, 'a value nobody wrote');
  t.equal(checkLinearizable(kvModel, [put('a', 'x', '1', 0, Infinity), get('b', 'x', '1', 20, 30), get('b', 'x', null, 40, 50)]).ok, false, 'a write cannot be seen and then unseen');
  t.equal(checkLinearizable(kvModel, [put('a', 'x', '1', 0, 10), put('b', 'x', '2', 20, 30), get('c', 'x', '2', 40, 50), get('d', 'x', '1', 60, 70)]).ok, false, 'reads go back in time');
  t.equal(checkLinearizable(kvModel, [cas('a', 'x', null, '1', true, 0, 10), cas('b', 'x', null, '2', true, 20, 30)]).ok, false, 'two cas from the same expectation cannot both win in sequence');
  // The classic: two clients read the same register concurrently with a write and see the new value then the old.
  t.equal(checkLinearizable(kvModel, [put('w', 'x', '0', 0, 5), put('w', 'x', '1', 10, 100), get('a', 'x', '1', 20, 30), get('b', 'x', '0', 40, 50)]).ok, false, 'new value then old value in real-time order');
});

t.test('random sequential histories are always linearizable; corrupting one read makes them not', async (t) => {
  const opArb = fc.oneof(
    fc.record({ kind: fc.constant('put' as const), key: fc.constantFrom('a', 'b'), value: fc.constantFrom('1', '2', '3') }),
    fc.record({ kind: fc.constant('get' as const), key: fc.constantFrom('a', 'b') }),
    fc.record({ kind: fc.constant('cas' as const), key: fc.constantFrom('a', 'b'), expect: fc.constantFrom(null, '1', '2'), value: fc.constantFrom('1', '2', '3') }),
  );
  fc.assert(fc.property(fc.array(opArb, { minLength: 1, maxLength: 40 }), fc.integer({ min: 0, max: 39 }), (inputs, corruptAt) => {
    const state = new Map<string, string | null>();
    const history: Op[] = inputs.map((input, i) => {
      const cur = state.get(input.key) ?? null;
      let output: KvOutput;
      if (input.kind === 'put') {
        state.set(input.key, input.value);
        output = 'ok';
      } else if (input.kind === 'get') {
        output = cur;
      } else {
        output = cur === input.expect;
        if (output) state.set(input.key, input.value);
      }
      // Overlap neighbours a little without changing their real-time order: i ends before i+1 starts.
      return { clientId: `c${i % 3}`, input, output, callMs: i * 10, returnMs: i * 10 + 9 };
    });
    if (checkLinearizable(kvModel, history).ok !== true) return false;
    const gets = history.filter((h) => h.input.kind === 'get');
    if (gets.length === 0) return true;
    const victim = gets[corruptAt % gets.length]!;
    victim.output = 'never-written';
    return checkLinearizable(kvModel, history).ok === false;
  }), { numRuns: 300 });
  t.pass();
});

t.test('a search that exceeds its budget says so instead of guessing', async (t) => {
  const concurrent: Op[] = Array.from({ length: 12 }, (_, i) => put(`c${i}`, 'x', String(i), 0, 100));
  concurrent.push(get('r', 'x', 'nope', 200, 300));
  const res = checkLinearizable(kvModel, concurrent, { maxSteps: 50 });
  t.equal(res.ok, 'unknown');
  t.throws(() => checkLinearizable(kvModel, [put('a', 'x', '1', 10, 5)]), { code: 'ERR_INVARIANT' });
});
