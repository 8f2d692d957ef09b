/**
 * The regression list: seeds that once failed, replayed on every test run. Each entry says whether the seed must
 * now pass (a fixed bug) or must still fail (a deliberately broken scenario that proves a check still bites).
 */
import { InvalidArgumentError } from '../lib/errors.js';

export interface Regression {
  scenario: string;
  seed: number;
  expect: 'pass' | 'fail';
  note: string;
}

export function readRegressions(text: string, where: string): Regression[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new InvalidArgumentError(`${where}: not valid JSON (${err instanceof Error ? err.message : String(err)})`, { where });
  }
  const list = (parsed as { regressions?: unknown })?.regressions;
  if (!Array.isArray(list)) throw new InvalidArgumentError(`${where}: expected an object with a "regressions" array`, { where });
  return list.map((entry: unknown, i: number) => {
    const e = entry as Partial<Regression>;
    const at = `${where}: regressions[${i}]`;
    if (typeof e.scenario !== 'string' || e.scenario === '') throw new InvalidArgumentError(`${at}.scenario must be a non-empty string`);
    if (!Number.isSafeInteger(e.seed) || (e.seed as number) < 0) throw new InvalidArgumentError(`${at}.seed must be a non-negative integer`);
    if (e.expect !== 'pass' && e.expect !== 'fail') throw new InvalidArgumentError(`${at}.expect must be "pass" or "fail"`);
    if (typeof e.note !== 'string') throw new InvalidArgumentError(`${at}.note must be a string`);
    return { scenario: e.scenario, seed: e.seed as number, expect: e.expect, note: e.note };
  });
}
