// Helper of serf-failover.mjs (soak mode). It runs *inside* one network namespace (`ip netns exec NS node
// soak-poller.mjs ...`), because each agent's API / Serf RPC listens on that namespace's own 127.0.0.1 and the
// benchmark process, in the root namespace, cannot reach it. Every --interval-ms it asks the local Shoal agent
// and (optionally) the local Serf agent for their member views and prints one JSON line per sample:
//   {"t": <ms since start>, "shoal": {"h1": "MEMBER_STATUS_ALIVE", ...} | {"error": "..."},
//    "serf": {"n1": "alive", ...} | {"error": "..."}}
// It exits when its stdin closes (the parent ended) or on SIGTERM.
//
//   node soak-poller.mjs --shoal-api 127.0.0.1:7646 [--serf-rpc 127.0.0.1:7373] [--interval-ms 1000]
import { execFile } from 'node:child_process';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const shoalApi = opt('--shoal-api', undefined);
const serfRpc = opt('--serf-rpc', undefined);
const intervalMs = Number(opt('--interval-ms', '1000'));

async function shoalView() {
  if (!shoalApi) return undefined;
  try {
    const res = await fetch(`http://${shoalApi}/rpc/shoal.v1.Members/List`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}', signal: AbortSignal.timeout(5_000),
    });
    if (!res.ok) return { error: `HTTP ${res.status}` };
    const body = await res.json();
    return Object.fromEntries((body.members ?? []).map((m) => [m.name, m.status ?? 'MEMBER_STATUS_UNSPECIFIED']));
  } catch (err) {
    return { error: String(err?.message ?? err) };
  }
}

function serfView() {
  if (!serfRpc) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    execFile('serf', ['members', `-rpc-addr=${serfRpc}`, '-format=json'], { timeout: 5_000 }, (err, stdout) => {
      if (err) return resolve({ error: String(err.message).split('\n')[0] });
      try {
        const body = JSON.parse(stdout);
        resolve(Object.fromEntries((body.members ?? []).map((m) => [m.name, m.status])));
      } catch (e) {
        resolve({ error: `bad JSON from serf members: ${String(e)}` });
      }
    });
  });
}

const start = Date.now();
let stopped = false;
process.stdin.on('end', () => (stopped = true));
process.stdin.on('close', () => (stopped = true));
process.stdin.resume();
process.on('SIGTERM', () => (stopped = true));

while (!stopped) {
  const slot = Date.now();
  const [shoal, serf] = await Promise.all([shoalView(), serfView()]);
  process.stdout.write(`${JSON.stringify({ t: slot - start, shoal, serf })}\n`);
  const wait = intervalMs - (Date.now() - slot);
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}
process.exit(0);
