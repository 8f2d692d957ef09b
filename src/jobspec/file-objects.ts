/**
 * The rules of secrets and configs in a job file that need no Collector: how a `mode` is read, where a service's
 * reference puts its file, and the YAML pass that keeps the octal meaning of `mode: 0440`. parse.ts converts with
 * them; checks.ts holds the rules that a canonical job must obey as well.
 */
import { isAlias, isMap, isScalar, isSeq, type Document } from 'yaml';
import type { DriverName } from './types.js';

export type FileObjectKind = 'secret' | 'config';

/** A file's permission bits when the reference gives no `mode`: readable by all, as in Swarm. */
export const DEFAULT_FILE_MODE = 0o444;
/** Permission bits, setuid, setgid and sticky included. */
export const MAX_FILE_MODE = 0o7777;
/** The largest uid or gid (2^32 - 1 is the kernel's "no id"). */
export const MAX_FILE_OWNER_ID = 4_294_967_294;

/** Where a container finds a secret whose target is relative (or absent), as in Swarm. */
export const CONTAINER_SECRETS_DIR = '/run/secrets';

/**
 * A reference's `mode`, as `docker stack deploy` reads it: a number is taken as it is (YAML 1.1, which Docker's
 * parser speaks, reads `0440` as octal; `markOctalModes` keeps that meaning here), a string is octal (`"0440"`,
 * `"440"`; `0o440` too). Returns the bits, or why the value is not a mode.
 */
export function parseFileMode(value: unknown): number | string {
  const bad = `mode ${typeof value === 'string' ? JSON.stringify(value) : String(value)} is not an octal number of permission bits (0 to 7777, such as 0440)`;
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 && value <= MAX_FILE_MODE ? value : bad;
  if (typeof value !== 'string') return bad;
  const m = /^(?:0o)?([0-7]+)$/i.exec(value.trim());
  if (!m) return bad;
  const mode = parseInt(m[1]!, 8);
  return mode <= MAX_FILE_MODE ? mode : bad;
}

/**
 * Whether permission bits look like ones a person means: read, write and execute as 0, 4, 5, 6 or 7, the group
 * allowed no more than the owner and others no more than the group (0400, 0440, 0644, 0755...), no special bits.
 * `mode: 440` is decimal to Docker, 0670, which is not: its author most likely meant 0440 (parse.ts warns).
 */
export function isPlausibleMode(mode: number): boolean {
  if (mode > 0o777) return false;
  const [owner, group, other] = [(mode >> 6) & 7, (mode >> 3) & 7, mode & 7];
  const usual = (d: number) => d === 0 || d >= 4;
  return usual(owner) && usual(group) && usual(other) && (group & ~owner) === 0 && (other & ~group) === 0;
}

/**
 * A relative path with its empty and `.` segments removed and each `..` taken with the segment before it
 * (`./a//b/../c` is `a/c`). A `..` that would go above the start is kept (`a/../../b` is `../b`), for checks.ts to
 * refuse: a process task's file must stay inside its directory.
 */
export function normaliseRelative(path: string): string {
  const out: string[] = [];
  for (const p of path.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..' && out.length > 0 && out[out.length - 1] !== '..') out.pop();
    else out.push(p);
  }
  return out.join('/');
}

/** An absolute path with `.`, `..` and empty segments resolved (`/run/secrets/../x` is `/run/x`). */
export function normaliseAbsolute(path: string): string {
  const out: string[] = [];
  for (const p of path.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') out.pop();
    else out.push(p);
  }
  return `/${out.join('/')}`;
}

/**
 * The canonical target of a service's reference to `source`. A container's is absolute: a secret's relative target
 * (by default, its source) is under /run/secrets, a config's under / (as Swarm places them). A process task's is
 * relative to SHOAL_SECRETS_DIR or SHOAL_CONFIGS_DIR; an absolute one is kept as written, for checks.ts to refuse
 * with the reason.
 */
export function resolveTarget(kind: FileObjectKind, driver: DriverName, source: string, target: string | undefined): string {
  const given = target ?? source;
  // (`.` normalises to nothing: kept as written, for checks.ts to say that it names no file.)
  if (driver === 'process') return given.startsWith('/') ? given : normaliseRelative(given) || given;
  if (given.startsWith('/')) return normaliseAbsolute(given);
  return normaliseAbsolute(`${kind === 'secret' ? CONTAINER_SECRETS_DIR : ''}/${given}`);
}

type YamlPath = (string | number)[];

/** The node at `path`, through aliases and merge keys (`<<: *defaults`), as `toJS` resolves them. */
function nodeAt(doc: Document, path: YamlPath): unknown {
  const resolve = (n: unknown): unknown => (isAlias(n) ? n.resolve(doc) : n);
  const child = (node: unknown, key: string | number): unknown => {
    if (isSeq(node)) return typeof key === 'number' ? node.items[key] : undefined;
    if (!isMap(node)) return undefined;
    const pair = node.items.find((p) => isScalar(p.key) && typeof p.key.value !== 'symbol' && String(p.key.value) === String(key));
    if (pair) return pair.value;
    // A key the map takes from merged maps: the first of them that has it wins, as in YAML's merge.
    for (const merge of node.items.filter((p) => isScalar(p.key) && typeof p.key.value === 'symbol')) {
      const from = resolve(merge.value);
      for (const source of isSeq(from) ? from.items : [from]) {
        const found = child(resolve(source), key);
        if (found !== undefined) return found;
      }
    }
    return undefined;
  };
  let node: unknown = doc.contents;
  for (const key of path) {
    node = child(resolve(node), key);
    if (node === undefined) return undefined;
  }
  return resolve(node);
}

/** A number written with a leading zero (`0440`) or in YAML 1.2's octal (`0o440`). */
const OCTAL_LOOKING_RE = /^[-+]?0(?:[0-9]+|o[0-7]+)$/i;

/**
 * The YAML library reads `mode: 0440` as YAML 1.2 does, as the decimal 440; Docker's parser (YAML 1.1) reads it as
 * octal, and Compose files are written for it. So, in the tree of one file, every service secret's or config's
 * `mode` written as a plain number with a leading zero (or `0o`) is replaced by its text, which parseFileMode reads
 * as octal (and refuses when it is not: `0948`).
 */
export function markOctalModes(doc: Document, tree: Record<string, unknown>): void {
  const services = tree['services'];
  if (typeof services !== 'object' || services === null || Array.isArray(services)) return;
  for (const [name, service] of Object.entries(services as Record<string, unknown>)) {
    if (typeof service !== 'object' || service === null || Array.isArray(service)) continue;
    for (const kind of ['secrets', 'configs']) {
      const refs = (service as Record<string, unknown>)[kind];
      if (!Array.isArray(refs)) continue;
      refs.forEach((ref: unknown, i) => {
        if (typeof ref !== 'object' || ref === null || typeof (ref as Record<string, unknown>)['mode'] !== 'number') return;
        const node = nodeAt(doc, ['services', name, kind, i, 'mode']);
        if (isScalar(node) && node.type === 'PLAIN' && typeof node.source === 'string' && OCTAL_LOOKING_RE.test(node.source)) {
          (ref as Record<string, unknown>)['mode'] = node.source;
        }
      });
    }
  }
}
