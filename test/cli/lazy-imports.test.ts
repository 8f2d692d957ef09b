/**
 * `shoal agent` runs the same program as the CLI, so what the CLI imports when it starts, every agent carries. The
 * job spec's parser and validator (yaml plus zod, about 5 MB of memory) must load only where a job is read: the
 * `job` commands, and the leader's check of a submitted job.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const dist = (p: string): string => pathToFileURL(join(ROOT, 'dist', p)).href;

/** Imports `modules` in a fresh node whose resolver refuses zod; returns the exit status and stderr. */
function importWithoutZod(dir: string, modules: string[]): { status: number | null; stderr: string } {
  writeFileSync(join(dir, 'hooks.mjs'), [
    'export async function resolve(specifier, context, next) {',
    "  if (specifier === 'zod' || specifier.startsWith('zod/')) throw new Error(`zod was imported by ${context.parentURL}`);",
    '  return next(specifier, context);',
    '}',
  ].join('\n'));
  writeFileSync(join(dir, 'register.mjs'), "import { register } from 'node:module';\nregister('./hooks.mjs', import.meta.url);\n");
  const script = `for (const m of ${JSON.stringify(modules)}) await import(m);`;
  const r = spawnSync(process.execPath, ['--import', pathToFileURL(join(dir, 'register.mjs')).href, '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stderr: r.stderr };
}

t.test('the CLI and the agent start without zod', async (t) => {
  const r = importWithoutZod(t.testdir({}), [dist('cli/main.js'), dist('runtime/agent.js'), dist('runtime/config.js'), dist('runtime/control-plane.js')]);
  t.equal(r.status, 0, r.stderr);
});

t.test('the guard bites: the job-file parser does import zod', async (t) => {
  const r = importWithoutZod(t.testdir({}), [dist('jobspec/parse.js')]);
  t.not(r.status, 0);
  t.match(r.stderr, /zod was imported by .*dist\/jobspec\//);
});
