import t from 'tap';
import { ESLint } from 'eslint';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const eslint = new ESLint({ cwd: root });

async function lint(path: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: `${root}/${path}` });
  return (result?.messages ?? []).map((m) => `${m.ruleId}: ${m.message}`);
}

t.test('the determinism rule refuses clocks, randomness, timers and I/O in every core folder', async (t) => {
  for (const folder of ['lib', 'sim', 'membership', 'consensus', 'scheduler', 'partitions', 'state', 'jobspec']) {
    const found = await lint(`src/${folder}/injected.ts`, [
      "import fs from 'node:fs';",
      "import { randomBytes } from 'crypto';",
      'export const a = Math.random();',
      'export const b = Date.now();',
      'export const c = new Date();',
      'export const d = performance.now();',
      'export const e = process.hrtime();',
      'setTimeout(() => {}, 1);',
      'setInterval(() => {}, 1);',
      'setImmediate(() => {});',
      'export const f = [fs, randomBytes];',
    ].join('\n'));
    const text = found.join('\n');
    for (const what of ["'node:fs' import is restricted", "'crypto' import is restricted", 'Math.random', 'Date.now', 'new Date()', 'performance.now', 'process', 'setTimeout', 'setInterval', 'setImmediate']) {
      t.ok(text.includes(what), `${folder}: ${what} is refused`);
    }
  }
  t.same(await lint('src/consensus/ok.ts', "import assert from 'node:assert';\nimport { invariant } from '../lib/assert.js';\nexport const ok = [assert, invariant];\n"), [], 'node:assert and lib are fine');
});

t.test('the runtime edge may use the clock and timers', async (t) => {
  t.same(await lint('src/platform/ok.ts', "import { performance } from 'node:perf_hooks';\nexport const now = performance.now();\nsetTimeout(() => {}, 1);\n"), []);
});

t.test('the import direction from docs/ARCHITECTURE.md is enforced', async (t) => {
  const bad = await lint('src/lib/x.ts', "import { createLogger } from '../log/logger.js';\nexport const l = createLogger;\n");
  t.match(bad.join('\n'), /boundaries\/dependencies: There is no policy allowing dependencies from elements of type "lib" to elements of type "log"/);
  const bad2 = await lint('src/sim/x.ts', "import { encodeFrame } from '../wire/frame.js';\nexport const e = encodeFrame;\n");
  t.match(bad2.join('\n'), /from elements of type "sim" to elements of type "wire"/);
  t.same(await lint('src/wire/x.ts', "import { LIMITS } from '../lib/limits.js';\nexport const l = LIMITS;\n"), [], 'wire -> lib is allowed');
});
