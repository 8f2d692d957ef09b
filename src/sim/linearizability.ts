/**
 * A linearizability checker (Wing & Gong's search with Lowe's memoisation, the algorithm behind Knossos and
 * Porcupine).
 *
 * A history is a list of operations, each with the virtual time it was invoked and the time it returned (Infinity
 * when the client never heard back: such an operation may have taken effect at any point after its call, or not at
 * all, which is the same thing as "at the very end"). The history is linearizable if some total order of the
 * operations respects real time (an operation that returned before another was invoked comes first) and replays
 * through the sequential model with every completed operation giving the output the client saw.
 *
 * The search linearizes operations one at a time, backtracking on a dead end; the cache of (set of linearized
 * operations, model state) pairs already explored keeps it from exploring the same configuration twice. Models may
 * split a history into independent parts (one per key for a key-value store), which keeps each search small.
 */
import { invariant } from '../lib/assert.js';

export interface Operation<I, O> {
  clientId: string;
  input: I;
  /** Ignored when the operation never returned. */
  output: O | undefined;
  callMs: number;
  /** Infinity when the client never learned the outcome. */
  returnMs: number;
}

export interface Model<S, I, O> {
  init(): S;
  /** Applies `input` to `state`. Returns the next state if `output` is what a sequential object would return. */
  step(state: S, input: I, output: O | undefined, completed: boolean): S | undefined;
  /** A string that identifies a state, for the memo. */
  key(state: S): string;
  /** Independent sub-histories (e.g. one per key); default: the whole history. */
  partition?(operations: readonly Operation<I, O>[]): Operation<I, O>[][];
  describe?(operation: Operation<I, O>): string;
}

export type CheckResult =
  | { ok: true }
  | { ok: false; partition: number; reason: string; operations: string[] }
  | { ok: 'unknown'; reason: string };

interface Entry {
  op: number;
  isCall: boolean;
  time: number;
  prev: Entry | undefined;
  next: Entry | undefined;
  match: Entry | undefined;
}

export interface CheckOptions {
  /** Give up (result "unknown") after exploring this many configurations in one partition. */
  maxSteps?: number;
}

export function checkLinearizable<S, I, O>(model: Model<S, I, O>, history: readonly Operation<I, O>[], options: CheckOptions = {}): CheckResult {
  const parts = model.partition ? model.partition(history) : [history.slice()];
  for (let p = 0; p < parts.length; p++) {
    const part = parts[p] as Operation<I, O>[];
    const result = checkPart(model, part, options.maxSteps ?? 2_000_000);
    if (result === 'unknown') return { ok: 'unknown', reason: `partition ${p} exceeded the search budget of ${options.maxSteps ?? 2_000_000} steps` };
    if (!result) {
      const describe = model.describe ?? ((o: Operation<I, O>) => `${o.clientId} ${JSON.stringify(o.input)} -> ${JSON.stringify(o.output)} [${o.callMs}, ${o.returnMs}]`);
      return { ok: false, partition: p, reason: `no linearization of ${part.length} operations`, operations: part.map(describe) };
    }
  }
  return { ok: true };
}

function checkPart<S, I, O>(model: Model<S, I, O>, ops: readonly Operation<I, O>[], maxSteps: number): boolean | 'unknown' {
  if (ops.length === 0) return true;
  for (const o of ops) invariant(o.returnMs >= o.callMs, `operation returned (${o.returnMs}) before it was called (${o.callMs})`);
  // Build the event list: calls sort before returns at the same instant (the permissive reading of a tie).
  const events: Entry[] = [];
  ops.forEach((o, i) => {
    const call: Entry = { op: i, isCall: true, time: o.callMs, prev: undefined, next: undefined, match: undefined };
    const ret: Entry = { op: i, isCall: false, time: o.returnMs, prev: undefined, next: undefined, match: undefined };
    call.match = ret;
    events.push(call, ret);
  });
  events.sort((a, b) => a.time - b.time || (a.isCall === b.isCall ? a.op - b.op : a.isCall ? -1 : 1));
  const head: Entry = { op: -1, isCall: false, time: -Infinity, prev: undefined, next: undefined, match: undefined };
  let last = head;
  for (const e of events) {
    e.prev = last;
    last.next = e;
    last = e;
  }

  const linearized = new Uint32Array(Math.ceil(ops.length / 32));
  const cache = new Set<string>();
  const stack: { entry: Entry; state: S }[] = [];
  let state = model.init();
  let entry = head.next;
  let steps = 0;

  const lift = (e: Entry): void => {
    // Remove the call and its return from the list.
    e.prev!.next = e.next;
    if (e.next) e.next.prev = e.prev;
    const r = e.match!;
    r.prev!.next = r.next;
    if (r.next) r.next.prev = r.prev;
  };
  const unlift = (e: Entry): void => {
    const r = e.match!;
    r.prev!.next = r;
    if (r.next) r.next.prev = r;
    e.prev!.next = e;
    if (e.next) e.next.prev = e;
  };

  while (head.next !== undefined) {
    if (++steps > maxSteps) return 'unknown';
    if (entry === undefined) return false; // cannot happen with a well-formed list; kept as a guard
    if (entry.isCall) {
      const op = ops[entry.op] as Operation<I, O>;
      const completed = Number.isFinite(op.returnMs);
      const next = model.step(state, op.input, op.output, completed);
      let advanced = false;
      if (next !== undefined) {
        linearized[entry.op >> 5]! |= 1 << (entry.op & 31);
        const key = `${Array.from(linearized).join(',')}|${model.key(next)}`;
        if (!cache.has(key)) {
          cache.add(key);
          stack.push({ entry, state });
          state = next;
          lift(entry);
          entry = head.next;
          advanced = true;
        } else {
          linearized[entry.op >> 5]! &= ~(1 << (entry.op & 31));
        }
      }
      if (!advanced) entry = entry.next;
    } else {
      // A return whose call is still pending: nothing before it can be linearized next, so backtrack.
      const top = stack.pop();
      if (top === undefined) return false;
      state = top.state;
      linearized[top.entry.op >> 5]! &= ~(1 << (top.entry.op & 31));
      unlift(top.entry);
      entry = top.entry.next;
    }
  }
  return true;
}

// --- A key-value register model, checked one key at a time ------------------------------------------------------

export type KvInput =
  | { kind: 'put'; key: string; value: string }
  | { kind: 'get'; key: string }
  /** Compare-and-set: writes `value` if the current value equals `expect` (null = absent). */
  | { kind: 'cas'; key: string; expect: string | null; value: string };

/** put -> 'ok'; get -> the value or null; cas -> true/false. */
export type KvOutput = 'ok' | string | null | boolean;

export const kvModel: Model<string | null, KvInput, KvOutput> = {
  init: () => null,
  step(state, input, output, completed) {
    switch (input.kind) {
      case 'put':
        return input.value;
      case 'get':
        if (!completed) return state;
        return output === state ? state : undefined;
      case 'cas': {
        const succeeded = state === input.expect;
        if (completed && output !== succeeded) return undefined;
        return succeeded ? input.value : state;
      }
    }
  },
  key: (state) => (state === null ? '\u0000' : state),
  partition(operations) {
    const byKey = new Map<string, Operation<KvInput, KvOutput>[]>();
    for (const o of operations) {
      const list = byKey.get(o.input.key) ?? [];
      list.push(o);
      byKey.set(o.input.key, list);
    }
    return [...byKey.values()];
  },
  describe: (o) => `${o.clientId} ${o.input.kind}(${o.input.key}${'value' in o.input ? `=${o.input.value}` : ''}) -> ${Number.isFinite(o.returnMs) ? JSON.stringify(o.output) : '?'} [${o.callMs}, ${o.returnMs}]`,
};
