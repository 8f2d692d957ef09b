/**
 * Several Compose files as one, merged in order as `docker stack deploy -c a -c b` merges them (pure), with the file
 * each path came from last, so that an issue can name it, and, for list entries that moved (appended after another
 * file's, or put in the place of the entries they replace), their path in that file, so that it can point at them.
 */
type Path = (string | number)[];

/** Lists whose entries Compose adds to, across files (duplicates dropped). */
const APPENDED_LISTS = new Set(['ports', 'expose', 'volumes', 'dns', 'dns_search', 'dns_opt', 'extra_hosts', 'cap_add', 'cap_drop', 'env_file', 'networks', 'constraints', 'preferences', 'aliases']);
/** Lists of KEY=VALUE that Compose merges by key with a mapping, or with each other. */
const KEYED_LISTS = new Set(['environment', 'labels', 'sysctls']);
/** A service's lists whose entries are keyed by their `source` (the key itself, in the short syntax). */
const SOURCE_KEYED_LISTS = new Set(['secrets', 'configs']);

export const originKey = (path: Path): string => path.join('\u0000');
const isMapping = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function markOrigin(origins: Map<string, number>, path: Path, value: unknown, i: number): void {
  origins.set(originKey(path), i);
  if (Array.isArray(value)) value.forEach((v, j) => markOrigin(origins, [...path, j], v, i));
  else if (isMapping(value)) for (const [k, v] of Object.entries(value)) markOrigin(origins, [...path, k], v, i);
}

function keyedToMapping(v: unknown): unknown {
  if (!Array.isArray(v)) return v;
  return Object.fromEntries(v.map((e) => {
    const text = String(e);
    const eq = text.indexOf('=');
    return eq < 0 ? [text, null] : [text.slice(0, eq), text.slice(eq + 1)];
  }));
}

/** Undoes markOrigin for `value` at `path`. */
function unmarkOrigin(origins: Map<string, number>, path: Path, value: unknown): void {
  origins.delete(originKey(path));
  if (Array.isArray(value)) value.forEach((v, j) => unmarkOrigin(origins, [...path, j], v));
  else if (isMapping(value)) for (const [k, v] of Object.entries(value)) unmarkOrigin(origins, [...path, k], v);
}

/** Forgets the entries recorded as moved below `path`: what was there is gone. (`moved` holds list entries only.) */
function forgetMovedBelow(moved: Map<string, Path>, path: Path): void {
  if (moved.size === 0) return;
  const prefix = `${originKey(path)}\u0000`;
  for (const k of [...moved.keys()]) if (k.startsWith(prefix)) moved.delete(k);
}

/** `over` replaces what was at `path` (if anything): all of it comes from file `i`, at its own path there. */
function replaced(origins: Map<string, number>, moved: Map<string, Path>, path: Path, over: unknown, i: number): unknown {
  forgetMovedBelow(moved, path);
  markOrigin(origins, path, over, i);
  return over;
}

/**
 * `moved` gets, for each list entry whose index in the merged tree is not its index in the file it came from, the
 * entry's path in that file (keyed by `originKey` of its merged path).
 */
export function mergeCompose(base: unknown, over: unknown, path: Path, i: number, origins: Map<string, number>, moved: Map<string, Path> = new Map()): unknown {
  const key = path[path.length - 1];
  if (base === undefined) return replaced(origins, moved, path, over, i);
  if (typeof key === 'string' && KEYED_LISTS.has(key) && (Array.isArray(base) || Array.isArray(over))) {
    return mergeCompose(keyedToMapping(base), keyedToMapping(over), path, i, origins, moved);
  }
  // A service's networks as a list on one side and a mapping on the other: the list's names, without options.
  if (key === 'networks' && path[0] === 'services' && Array.isArray(base) !== Array.isArray(over)) {
    const asMap = (v: unknown) => (Array.isArray(v) ? Object.fromEntries(v.map((n) => [String(n), null])) : v);
    return mergeCompose(asMap(base), asMap(over), path, i, origins, moved);
  }
  // A top-level secret or config is replaced whole, as `docker stack deploy` replaces it: an override that gives
  // another source (environment: instead of file:) means that one, not both.
  if (path.length === 2 && (path[0] === 'secrets' || path[0] === 'configs')) return replaced(origins, moved, path, over, i);
  if (path.length === 3 && path[0] === 'services' && typeof key === 'string' && SOURCE_KEYED_LISTS.has(key) && Array.isArray(base) && Array.isArray(over)) {
    return mergeBySource(base, over, path, i, origins, moved);
  }
  if (isMapping(base) && isMapping(over)) {
    const out: Record<string, unknown> = { ...base };
    origins.set(originKey(path), i);
    for (const [k, v] of Object.entries(over)) out[k] = mergeCompose(base[k], v, [...path, k], i, origins, moved);
    return out;
  }
  if (Array.isArray(base) && Array.isArray(over) && typeof key === 'string' && APPENDED_LISTS.has(key)) {
    const seen = new Set(base.map((v) => JSON.stringify(v)));
    const out = [...base];
    over.forEach((v, k) => {
      if (seen.has(JSON.stringify(v))) return;
      seen.add(JSON.stringify(v));
      markOrigin(origins, [...path, out.length], v, i);
      if (out.length !== k) moved.set(originKey([...path, out.length]), [...path, k]);
      out.push(v);
    });
    return out;
  }
  return replaced(origins, moved, path, over, i);
}

const sourceOf = (entry: unknown): string | undefined => (typeof entry === 'string' ? entry : isMapping(entry) && typeof entry['source'] === 'string' ? entry['source'] : undefined);

/**
 * A service's `secrets` or `configs` from two files, as `docker stack deploy` merges them: keyed by source, the later
 * file's entries for a source replace the earlier file's (all of them, whole: short and long syntax alike), where the
 * first of those was; entries for new sources follow, in the later file's order.
 */
function mergeBySource(base: unknown[], over: unknown[], path: Path, i: number, origins: Map<string, number>, moved: Map<string, Path>): unknown[] {
  const replacing = new Map<string, { entry: unknown; from: number; at: Path }[]>();
  const added: { entry: unknown; from: number; at: Path }[] = [];
  over.forEach((entry, k) => {
    const source = sourceOf(entry);
    const e = { entry, from: i, at: [...path, k] };
    if (source !== undefined && base.some((b) => sourceOf(b) === source)) replacing.set(source, [...(replacing.get(source) ?? []), e]);
    else added.push(e);
  });
  const out: { entry: unknown; from: number; at: Path }[] = [];
  const listFrom = origins.get(originKey(path)) ?? i;
  base.forEach((entry, j) => {
    const source = sourceOf(entry);
    const replacements = source === undefined ? undefined : replacing.get(source);
    const at = [...path, j];
    if (replacements === undefined) out.push({ entry, from: origins.get(originKey(at)) ?? listFrom, at: moved.get(originKey(at)) ?? at });
    else if (base.findIndex((b) => sourceOf(b) === source) === j) out.push(...replacements);
  });
  out.push(...added);
  // The entries moved: forget where the old indices came from, and record each entry's file and place at its new index.
  base.forEach((entry, j) => unmarkOrigin(origins, [...path, j], entry));
  forgetMovedBelow(moved, path);
  origins.set(originKey(path), i);
  out.forEach((e, j) => {
    markOrigin(origins, [...path, j], e.entry, e.from);
    if (originKey(e.at) !== originKey([...path, j])) moved.set(originKey([...path, j]), e.at);
  });
  return out.map((e) => e.entry);
}
