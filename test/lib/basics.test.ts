import t from 'tap';
import { ManualClock } from '../../src/lib/clock.js';
import { invariant, unreachable, assertInteger, assertMonotonic } from '../../src/lib/assert.js';
import { ShoalError, InvariantError, hasCode, describeError, AmbiguousIdError, LimitExceededError } from '../../src/lib/errors.js';
import { LIMITS, checkLimits } from '../../src/lib/limits.js';

t.test('manual clock moves forward only', async (t) => {
  const c = new ManualClock(10);
  t.equal(c.nowMs(), 10);
  t.equal(c.advance(5), 15);
  c.set(20);
  t.equal(c.nowMs(), 20);
  t.throws(() => c.set(19), { code: 'ERR_INVARIANT' });
  t.throws(() => c.advance(-1), { code: 'ERR_INVARIANT' });
  t.throws(() => new ManualClock(Number.NaN), { code: 'ERR_INVARIANT' });
});

t.test('invariants throw InvariantError with details; helpers check ranges and order', async (t) => {
  t.doesNotThrow(() => invariant(true, 'fine'));
  const err = t.throws(() => invariant(false, 'broken', { term: 3 })) as InvariantError;
  t.equal(err.code, 'ERR_INVARIANT');
  t.same(err.details, { term: 3 });
  t.throws(() => unreachable('x' as never), { code: 'ERR_INVARIANT' });
  t.throws(() => assertInteger(1.5, 'term'), { message: /term must be an integer/ });
  t.doesNotThrow(() => assertInteger(3, 'term', 0, 5));
  t.throws(() => assertMonotonic(5, 4, 'commit index'), { message: /commit index went backwards: 5 -> 4/ });
});

t.test('errors carry stable codes and serialise', async (t) => {
  const e = new LimitExceededError('ERR_QUEUE_FULL', 'queue full', { limit: 3 });
  t.ok(e instanceof ShoalError);
  t.equal(e.name, 'LimitExceededError');
  t.ok(hasCode(e, 'ERR_QUEUE_FULL'));
  t.notOk(hasCode(new Error('x'), 'ERR_QUEUE_FULL'));
  t.same(JSON.parse(JSON.stringify(e)), { code: 'ERR_QUEUE_FULL', message: 'queue full', details: { limit: 3 } });
  t.equal(describeError(e), 'ERR_QUEUE_FULL: queue full');
  t.equal(describeError(new TypeError('bad')), 'TypeError: bad');
  t.equal(describeError('text'), 'text');
  t.match(new AmbiguousIdError('ab', ['ab1', 'ab2', 'ab3', 'ab4', 'ab5', 'ab6']).message, /, \.\.\.\); type more characters/);
});

t.test('limits hold their relations, and a broken relation is caught', async (t) => {
  t.doesNotThrow(() => checkLimits());
  t.throws(() => checkLimits({ ...LIMITS, simMaxMessageBytes: LIMITS.maxFrameBytes + 1 }), { message: /simulator must not accept/ });
  t.throws(() => checkLimits({ ...LIMITS, maxEnvelopePayloadBytes: LIMITS.maxFrameBytes }), { message: /must fit in the largest frame/ });
  t.throws(() => checkLimits({ ...LIMITS, simTraceTailEvents: 0 }), { message: /positive integer/ });
});
