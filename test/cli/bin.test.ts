import t from 'tap';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const bin = fileURLToPath(new URL('../../bin/shoal', import.meta.url));

t.test('./bin/shoal runs the built CLI', async (t) => {
  const version = spawnSync(bin, ['--version'], { encoding: 'utf8' });
  t.equal(version.status, 0);
  t.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
  const help = spawnSync(bin, ['--help'], { encoding: 'utf8' });
  t.equal(help.status, 0);
  t.match(help.stdout, /Usage: shoal/);
});

t.test('an unknown command fails with a usage error', async (t) => {
  const res = spawnSync(bin, ['frobnicate'], { encoding: 'utf8' });
  t.equal(res.status, 1);
  t.match(res.stderr, /unknown command 'frobnicate'|too many arguments/);
});
