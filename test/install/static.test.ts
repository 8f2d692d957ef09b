/**
 * Checks of the installation files that need no booted system: the unit through systemd's own verifier and
 * security analyser, the Vagrantfile through Vagrant and Ruby, the scripts through bash and shellcheck, and the
 * installer's refusal of bad flags before it changes anything. The booted test is boot.test.ts.
 */
import t, { type Test } from 'tap';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { FILE_KEYS, loadAgentConfig } from '../../src/runtime/config.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const UNIT = join(ROOT, 'agent/shoal.service');
const INSTALL = join(ROOT, 'scripts/install.sh');
const UNINSTALL = join(ROOT, 'scripts/uninstall.sh');

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).status === 0;
}

function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { encoding: 'utf8', cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, timeout: 120_000 });
}

/**
 * `systemd-analyze verify` on a unit as installed: a scratch root holds /opt/shoal/bin/shoal (the verifier checks
 * that ExecStart exists) and systemd's own units (for the targets it orders against). Returns stderr.
 */
function verifyUnit(t: Test, unitText: string): { status: number | null; stderr: string } {
  const root = t.testdir({});
  mkdirSync(join(root, 'opt/shoal/bin'), { recursive: true });
  mkdirSync(join(root, 'etc/systemd/system'), { recursive: true });
  mkdirSync(join(root, 'usr/lib/systemd'), { recursive: true });
  cpSync(join(ROOT, 'bin/shoal'), join(root, 'opt/shoal/bin/shoal'));
  cpSync('/usr/lib/systemd/system', join(root, 'usr/lib/systemd/system'), { recursive: true, verbatimSymlinks: true });
  writeFileSync(join(root, 'etc/systemd/system/shoal.service'), unitText);
  const r = run('systemd-analyze', ['verify', `--root=${root}`, 'shoal.service']);
  return { status: r.status, stderr: r.stderr.trim() };
}

t.test('systemd unit', { skip: has('systemd-analyze') ? false : 'systemd-analyze is not installed (package systemd)' }, async (t) => {
  const unit = readFileSync(UNIT, 'utf8');

  t.test('systemd-analyze verify prints nothing: no warning at all', async (t) => {
    const r = verifyUnit(t, unit);
    t.equal(r.stderr, '', 'no output on stderr');
    t.equal(r.status, 0);
  });

  t.test('the verifier does report a bad value (so an empty stderr above means something)', async (t) => {
    const r = verifyUnit(t, unit.replace(/^KillMode=.*$/m, 'KillMode=sometimes'));
    t.match(r.stderr, /kill mode/i);
  });

  t.test('the settings the service relies on', async (t) => {
    const settings = new Map<string, string>();
    for (const line of unit.split('\n')) {
      const m = /^([A-Za-z]+)=(.*)$/.exec(line);
      if (m) settings.set(m[1]!, m[2]!);
    }
    t.equal(settings.get('Type'), 'notify');
    t.equal(settings.get('NotifyAccess'), 'all', 'READY=1 comes from a systemd-notify child of the agent');
    t.equal(settings.get('Restart'), 'on-failure');
    t.equal(settings.get('User'), 'shoal');
    t.equal(settings.get('KillMode'), 'process', 'process-driver tasks outlive an agent restart and are re-attached');
    t.equal(settings.get('StateDirectory'), 'shoal');
    t.equal(settings.get('ConfigurationDirectory'), 'shoal');
    t.equal(settings.get('LimitNOFILE'), '65536');
    t.match(settings.get('EnvironmentFile') ?? '', /^-/, 'the environment file is optional');
    t.notOk(settings.has('MemoryDenyWriteExecute'), 'V8 needs writable+executable memory for its JIT');
    t.notOk(settings.has('ProtectControlGroups'), 'the process driver writes cgroup files');
  });

  t.test('systemd-analyze security --offline=yes: the exposure score', async (t) => {
    const dir = t.testdir({});
    cpSync(UNIT, join(dir, 'shoal.service'));
    const r = run('systemd-analyze', ['security', '--offline=yes', '--no-pager', join(dir, 'shoal.service')]);
    const m = /Overall exposure level for shoal\.service: (\d+\.\d+)/.exec(r.stdout);
    t.ok(m, `a score is printed\n${r.stdout.slice(-500)}${r.stderr}`);
    const score = Number(m?.[1]);
    t.comment(`systemd-analyze security --offline=yes agent/shoal.service: ${score}`);
    // agent/README.md records 4.2; this fails if the hardening is weakened by accident.
    t.ok(score <= 4.5, `exposure ${score} <= 4.5`);
  });
});

t.test('default config file: every key parses with the agent\'s own loader', async (t) => {
  const file = join(ROOT, 'agent/agent.yaml');
  const config = loadAgentConfig({ config: file }, {});
  t.equal(config.dataDir, '/var/lib/shoal');
  t.same(config.bind, { host: '0.0.0.0', port: 7647 });
  t.same(config.api, { host: '127.0.0.1', port: 7646 });
  t.equal(config.clusterKeyFile, '/etc/shoal/cluster.key');
  t.equal(config.bootstrapExpect, 3);
  // Every key the agent's loader takes (so a new key fails here until it is documented) appears in the file, set or
  // commented out.
  const keys = Object.keys(FILE_KEYS);
  t.ok(keys.length >= 14, `the loader's keys: ${keys.join(', ')}`);
  const text = readFileSync(file, 'utf8');
  for (const key of keys) {
    t.match(text, new RegExp(`^(# )?${key}:`, 'm'), `${key} is documented`);
  }
  t.type(parse(text), 'object');
});

t.test('Vagrantfile', async (t) => {
  t.test('ruby -c', { skip: has('ruby') ? false : 'ruby is not installed' }, async (t) => {
    const r = run('ruby', ['-c', 'Vagrantfile']);
    t.equal(r.status, 0, r.stderr);
    t.match(r.stdout, /Syntax OK/);
  });

  const vagrant = has('vagrant') ? false : 'vagrant is not installed (Debian package vagrant)';
  // Vagrant's state and the generated key go to a scratch folder, never into the project tree.
  const vagrantEnv = (): NodeJS.ProcessEnv => {
    const dir = t.testdir({});
    return { VAGRANT_DOTFILE_PATH: join(dir, 'dot'), VAGRANT_HOME: join(dir, 'home'), VAGRANT_CHECKPOINT_DISABLE: '1' };
  };

  t.test('vagrant validate --ignore-provider: 3 nodes by default, a shared generated key', { skip: vagrant }, async (t) => {
    const env = vagrantEnv();
    const r = run('vagrant', ['validate', '--ignore-provider'], { env });
    t.equal(r.status, 0, r.stdout + r.stderr);
    t.match(r.stdout, /validated successfully/);
    for (const n of ['node1', 'node2', 'node3']) t.match(r.stdout, new RegExp(`${n}:`));
    t.notMatch(r.stdout, /node4:/);
    const key = readFileSync(join(env['VAGRANT_DOTFILE_PATH']!, 'shoal-cluster.key'), 'utf8');
    t.match(key, /^[0-9a-f]{64}\n$/);
    // A second run keeps the key: re-provisioning must not split the cluster.
    t.equal(run('vagrant', ['validate', '--ignore-provider'], { env }).status, 0);
    t.equal(readFileSync(join(env['VAGRANT_DOTFILE_PATH']!, 'shoal-cluster.key'), 'utf8'), key);
    t.notOk(existsSync(join(ROOT, '.vagrant')), 'nothing written into the project tree');
  });

  t.test('SHOAL_NODES sets the node count; nonsense is refused', { skip: vagrant }, async (t) => {
    const five = run('vagrant', ['validate', '--ignore-provider'], { env: { ...vagrantEnv(), SHOAL_NODES: '5' } });
    t.equal(five.status, 0, five.stderr);
    t.match(five.stdout, /node5:/);
    const zero = run('vagrant', ['validate', '--ignore-provider'], { env: { ...vagrantEnv(), SHOAL_NODES: '0' } });
    t.not(zero.status, 0);
    t.match(zero.stdout + zero.stderr, /SHOAL_NODES must be between 1 and 200/);
    const words = run('vagrant', ['validate', '--ignore-provider'], { env: { ...vagrantEnv(), SHOAL_NODES: 'three' } });
    t.not(words.status, 0);
  });

  t.test('addresses stay in 192.168.56.0/21 and everyone joins node1', async (t) => {
    const text = readFileSync(join(ROOT, 'Vagrantfile'), 'utf8');
    t.match(text, /config\.vm\.box = "debian\/bookworm64"/);
    t.match(text, /provider "virtualbox"/);
    t.match(text, /provider "libvirt"/);
    t.match(text, /scripts\/install\.sh/);
    t.match(text, /--join #\{FIRST_PEER\}/);
    // The same arithmetic as node_ip(): node 200, the highest allowed, is still inside the /21 (up to 192.168.63.255).
    const ip = (i: number): string => `192.168.${56 + Math.floor((10 + i) / 256)}.${(10 + i) % 256}`;
    t.equal(ip(1), '192.168.56.11');
    t.equal(ip(200), '192.168.56.210');
  });
});

t.test('install.sh and uninstall.sh', async (t) => {
  for (const script of [INSTALL, UNINSTALL]) {
    t.test(`bash -n ${script.slice(ROOT.length)}`, async (t) => {
      const r = run('bash', ['-n', script]);
      t.equal(r.status, 0, r.stderr);
    });
    t.test(`shellcheck ${script.slice(ROOT.length)}`, { skip: has('shellcheck') ? false : 'shellcheck is not installed' }, async (t) => {
      const r = run('shellcheck', ['--severity=info', script]);
      t.equal(r.status, 0, r.stdout);
    });
  }

  t.test('install.sh refuses bad flags before it changes anything on the host', { skip: process.getuid?.() === 0 ? false : 'the installer checks for root first' }, async (t) => {
    const cases: [string[], RegExp][] = [
      [['--bind', 'node1'], /--bind: 'node1' must be an IPv4 address/],
      [['--join', '10.0.0.1,bad:1'], /--join: 'bad:1' must be an IPv4 address/],
      [['--join', '10.0.0.1:99999'], /invalid port/],
      [['--labels', 'a=b,c'], /--labels: 'c' is not KEY=VALUE/],
      [['--bootstrap-expect', 'many'], /is not a number/],
      [['--bind'], /--bind needs a value/],
      [['--frobnicate'], /unknown argument '--frobnicate'/],
    ];
    const before = existsSync('/opt/shoal') || existsSync('/etc/shoal/agent.yaml');
    for (const [args, message] of cases) {
      const r = run('bash', [INSTALL, ...args]);
      t.equal(r.status, 1, `${args.join(' ')} exits 1`);
      t.match(r.stderr, message);
    }
    t.equal(existsSync('/opt/shoal') || existsSync('/etc/shoal/agent.yaml'), before, 'no installation appeared');
  });

  t.test('--help prints the usage', async (t) => {
    const r = run('bash', [INSTALL, '--help']);
    t.equal(r.status, 0);
    t.match(r.stdout, /--join IP\[:PORT\]/);
    const u = run('bash', [UNINSTALL, '--help']);
    t.equal(u.status, 0);
    t.match(u.stdout, /--purge/);
  });
});
