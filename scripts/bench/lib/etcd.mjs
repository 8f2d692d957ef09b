// etcd 3.4 (Debian's `etcd-server`) as a benchmark peer: a cluster of members on loopback, each on its own address,
// started and tracked through harness.mjs (so killed and removed at exit), with its v3 JSON gateway as the client.
// Defaults as shipped: heartbeat 100 ms, election 1000 ms, fsync on every commit.
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import { join } from 'node:path';
import { kill, start, waitUntil } from './harness.mjs';

/** A TCP port free on `host` right now. */
export async function freeTcpPort(host = '127.0.0.1') {
  const server = net.createServer();
  await new Promise((resolve, reject) => server.listen(0, host, () => resolve()).once('error', reject));
  const { port } = server.address();
  await new Promise((resolve) => server.close(() => resolve()));
  return port;
}

/** One JSON POST with a client-side deadline: {ok, status, body}; throws only on a network error or the deadline. */
export async function postJson(url, body, timeoutMs, headers = {}) {
  const res = await fetch(url, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let parsed;
  try {
    parsed = text === '' ? {} : JSON.parse(text);
  } catch (_err) {
    parsed = { raw: text };
  }
  return { ok: res.ok, status: res.status, body: parsed };
}

/** `etcd --version`'s first line, or undefined when etcd is not installed. */
export function etcdVersion() {
  const r = spawnSync('etcd', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split('\n')[0] : undefined;
}

const b64 = (s) => Buffer.from(s).toString('base64');

/**
 * Starts `hosts.length` members (member i listens on hosts[i], client and peer ports picked free), waits for a leader
 * and a first write. Returns the cluster: members [{name, url, host, proc, alive()}], status(m), leader(), put(m, key,
 * value, deadlineMs), range(m, key, {serializable}), kill(m), restart(m) (same data dir and ports), stop().
 */
export async function startEtcdCluster({ dir, hosts, readyTimeoutMs = 60_000 }) {
  const members = [];
  for (let i = 0; i < hosts.length; i++) {
    const host = hosts[i];
    members.push({ name: `e${i + 1}`, host, client: await freeTcpPort(host), peer: await freeTcpPort(host), dataDir: join(dir, `e${i + 1}`) });
  }
  const initial = members.map((m) => `${m.name}=http://${m.host}:${m.peer}`).join(',');
  const token = `bench-${process.pid}-${Date.now()}`;
  const launch = (m) => {
    m.proc = start('etcd', [
      '--name', m.name, '--data-dir', m.dataDir,
      '--listen-client-urls', `http://${m.host}:${m.client}`, '--advertise-client-urls', `http://${m.host}:${m.client}`,
      '--listen-peer-urls', `http://${m.host}:${m.peer}`, '--initial-advertise-peer-urls', `http://${m.host}:${m.peer}`,
      '--initial-cluster', initial, '--initial-cluster-state', 'new', '--initial-cluster-token', token,
      '--logger', 'zap', '--log-level', 'warn',
    ]);
    m.url = `http://${m.host}:${m.client}`;
    m.alive = () => m.proc.child.exitCode === null && m.proc.child.signalCode === null;
  };
  members.forEach(launch);
  const cluster = {
    system: 'etcd',
    members,
    async status(m, timeoutMs = 1_000) {
      const r = await postJson(`${m.url}/v3/maintenance/status`, {}, timeoutMs);
      if (!r.ok) throw new Error(`etcd ${m.name} status: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
      m.id = r.body.header?.member_id;
      return r.body;
    },
    /** The member that says it is the leader, or undefined. */
    async leader() {
      for (const m of members.filter((x) => x.alive())) {
        try {
          const st = await cluster.status(m);
          if (st.leader && st.leader !== '0' && st.header?.member_id === st.leader) return m;
        } catch (_err) {
          // Starting, or just killed: ask the next one.
        }
      }
      return undefined;
    },
    async put(m, key, value, deadlineMs) {
      const r = await postJson(`${m.url}/v3/kv/put`, { key: b64(key), value: b64(value) }, deadlineMs);
      if (!r.ok || r.body.error !== undefined) throw new Error(`etcd put on ${m.name}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
      return r.body;
    },
    async range(m, key, { serializable = false, deadlineMs = 2_000 } = {}) {
      const r = await postJson(`${m.url}/v3/kv/range`, { key: b64(key), ...(serializable ? { serializable: true } : {}) }, deadlineMs);
      if (!r.ok || r.body.error !== undefined) throw new Error(`etcd range on ${m.name}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
      return r.body;
    },
    async kill(m) {
      await kill(m.proc);
    },
    /** Starts a killed member again on its data dir, and waits until every member is up with one leader and a write passes. */
    async restart(m) {
      launch(m);
      await cluster.ready(readyTimeoutMs);
    },
    async ready(timeoutMs) {
      await waitUntil('etcd: every member up, one leader, a write committed', async () => {
        for (const x of members) if (!x.alive()) throw new Error(`etcd ${x.name} exited\n${x.proc.output()}`);
        for (const x of members) await cluster.status(x);
        const leader = await cluster.leader();
        if (!leader) return false;
        await cluster.put(leader, 'bench/ready', 'x', 2_000);
        return true;
      }, timeoutMs, 100);
    },
    async stop() {
      await Promise.all(members.map((m) => (m.proc ? kill(m.proc) : undefined)));
    },
  };
  try {
    await cluster.ready(readyTimeoutMs);
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}
