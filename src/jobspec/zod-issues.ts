/**
 * zod's issues turned into messages a person can act on, located by field path. Shared by the Compose parser
 * (parse.ts) and the canonical job validator (canonical.ts), which differ only in how they turn a path into a
 * line and column.
 */
import type { ZodError } from 'zod';

export type IssuePath = (string | number)[];

/** Records one problem at `path` (or at its key `key`, for a key that should not be there). */
export type ErrorSink = (path: IssuePath, message: string, key?: string) => void;

type ZodIssueList = ZodError['issues'];

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = root;
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[p];
  }
  return cur;
}

export function describeType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${JSON.stringify(v)}`;
}

/** The branch of a union that got furthest into the value is the one the author meant: report its issues. */
function bestBranch(branches: readonly ZodIssueList[]): ZodIssueList | undefined {
  let best: ZodIssueList | undefined;
  let bestDepth = 0;
  for (const branch of branches) {
    const depth = Math.max(0, ...branch.map((i) => i.path.length + (i.code === 'unrecognized_keys' ? 1 : 0)));
    if (depth > bestDepth) {
      best = branch;
      bestDepth = depth;
    }
  }
  return best;
}

/**
 * Reports every issue of a failed zod parse of `root`. `hints` explains, by key, why a key that is not allowed is
 * not (e.g. `privileged: '"privileged" is not allowed'`).
 */
export function reportZodIssues(error: ZodError, root: unknown, sink: ErrorSink, hints: Readonly<Record<string, string>> = {}): void {
  report(error.issues, [], root, sink, hints);
}

function report(issues: ZodIssueList, base: IssuePath, root: unknown, sink: ErrorSink, hints: Readonly<Record<string, string>>): void {
  for (const issue of issues) {
    const path = [...base, ...issue.path.filter((p): p is string | number => typeof p !== 'symbol')];
    if (issue.code === 'invalid_union') {
      const branch = bestBranch(issue.errors as ZodIssueList[]);
      if (branch) {
        report(branch, path, root, sink, hints);
        continue;
      }
    }
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        const hint = hints[key];
        sink(path, hint ? `unsupported key "${key}": ${hint}` : `unknown key "${key}"`, key);
      }
    } else if (issue.code !== 'custom' && valueAt(root, path) === undefined) {
      sink(path, issue.code === 'invalid_type' ? `is required (expected ${issue.expected})` : `is required (${issue.message})`);
    } else if (issue.code === 'invalid_type' || issue.code === 'invalid_union') {
      sink(path, `has the wrong type: got ${describeType(valueAt(root, path))}${issue.code === 'invalid_type' ? `, expected ${issue.expected}` : ''}`);
    } else {
      sink(path, issue.message);
    }
  }
}
