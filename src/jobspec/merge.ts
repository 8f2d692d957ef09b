/**
 * Several Compose files as one, merged in order as `docker stack deploy -c a -c b` merges them (pure), with the file
 * each path came from last, so that an issue can name it.
 */
type Path = (string | number)[];

/** Lists whose entries Compose adds to, across files (duplicates dropped). */
const APPENDED_LISTS = new Set(['ports', 'expose', 'volumes', 'dns', 'dns_search', 'dns_opt', 'extra_hosts', 'cap_add', 'cap_drop', 'env_file', 'networks', 'constraints', 'preferences', 'aliases']);
/** Lists of KEY=VALUE that Compose merges by key with a mapping, or with each other. */
const KEYED_LISTS = new Set(['environment', 'labels', 'sysctls']);

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

export function mergeCompose(base: unknown, over: unknown, path: Path, i: number, origins: Map<string, number>): unknown {
  const key = path[path.length - 1];
  if (base === undefined) {
    markOrigin(origins, path, over, i);
    return over;
  }
  if (typeof key === 'string' && KEYED_LISTS.has(key) && (Array.isArray(base) || Array.isArray(over))) {
    return mergeCompose(keyedToMapping(base), keyedToMapping(over), path, i, origins);
  }
  // A service's networks as a list on one side and a mapping on the other: the list's names, without options.
  if (key === 'networks' && path[0] === 'services' && Array.isArray(base) !== Array.isArray(over)) {
    const asMap = (v: unknown) => (Array.isArray(v) ? Object.fromEntries(v.map((n) => [String(n), null])) : v);
    return mergeCompose(asMap(base), asMap(over), path, i, origins);
  }
  if (isMapping(base) && isMapping(over)) {
    const out: Record<string, unknown> = { ...base };
    origins.set(originKey(path), i);
    for (const [k, v] of Object.entries(over)) out[k] = mergeCompose(base[k], v, [...path, k], i, origins);
    return out;
  }
  if (Array.isArray(base) && Array.isArray(over) && typeof key === 'string' && APPENDED_LISTS.has(key)) {
    const seen = new Set(base.map((v) => JSON.stringify(v)));
    const out = [...base];
    for (const v of over) {
      if (seen.has(JSON.stringify(v))) continue;
      seen.add(JSON.stringify(v));
      markOrigin(origins, [...path, out.length], v, i);
      out.push(v);
    }
    return out;
  }
  markOrigin(origins, path, over, i);
  return over;
}
