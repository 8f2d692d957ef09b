/**
 * Compose variable substitution in string values: `$VAR`, `${VAR}`, `${VAR:-default}` (unset or empty),
 * `${VAR-default}` (unset), `${VAR:?message}` / `${VAR?message}` (required), and `$$` for a literal `$`.
 * The environment is passed in: a core never reads the process's own.
 */

export type Env = Readonly<Record<string, string | undefined>>;

/** The substituted text, and the variables it names plainly (no default) that are not set, as Compose warns of. */
export function interpolate(text: string, env: Env): { value: string; unset?: string[] } | { error: string } {
  let out = '';
  const unset: string[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c !== '$') {
      out += c;
      continue;
    }
    const next = text[i + 1];
    if (next === '$') {
      out += '$';
      i++;
      continue;
    }
    if (next === '{') {
      const end = findClose(text, i + 2);
      if (end < 0) return { error: `unterminated "\${" in "${text}"` };
      const inner = text.slice(i + 2, end);
      const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])(.*))?$/s.exec(inner);
      if (!m) return { error: `invalid variable reference "\${${inner}}" (expected \${NAME}, \${NAME:-default} or \${NAME:?message})` };
      const [, name, colon, kind, rest] = m as unknown as [string, string, string | undefined, string | undefined, string | undefined];
      const raw = env[name];
      const missing = raw === undefined || (colon === ':' && raw === '');
      if (kind === undefined) {
        if (raw === undefined) unset.push(name);
        out += raw ?? '';
      }
      else if (kind === '-') {
        if (missing) {
          const nested = interpolate(rest ?? '', env);
          if ('error' in nested) return nested;
          out += nested.value;
        } else out += raw;
      } else {
        if (missing) return { error: `required variable ${name} is ${raw === undefined ? 'not set' : 'empty'}${rest ? `: ${rest}` : ''}` };
        out += raw;
      }
      i = end;
      continue;
    }
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i + 1));
    if (m) {
      if (env[m[0]] === undefined) unset.push(m[0]);
      out += env[m[0]] ?? '';
      i += m[0].length;
      continue;
    }
    out += '$';
  }
  return unset.length > 0 ? { value: out, unset } : { value: out };
}

function findClose(text: string, from: number): number {
  let depth = 1;
  for (let j = from; j < text.length; j++) {
    if (text[j] === '{') depth++;
    else if (text[j] === '}' && --depth === 0) return j;
  }
  return -1;
}
