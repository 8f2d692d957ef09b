/**
 * The gossip codec: what the membership core says survives the wire unchanged, metadata included (the ingress
 * ports a node cannot listen on), and what a peer could get wrong is refused with the field named.
 */
import t from 'tap';
import { decodeGossip, encodeGossip } from '../../src/runtime/gossip-codec.js';
import { LIMITS } from '../../src/lib/limits.js';
import { shoal } from '../../src/gen/proto.js';
import type { GossipMessage, NodeMeta } from '../../src/membership/index.js';

const meta = (o: Partial<NodeMeta> = {}): NodeMeta => ({
  name: 'n1', agentVersion: '0.1.0', addresses: ['127.0.0.1:7647', '127.0.0.1:7646'], labels: { zone: 'a' },
  resources: { cpuMillicores: 2000, memoryBytes: 1 << 30, diskFreeBytes: 1 << 20 }, drivers: ['docker', 'process'],
  roles: { voter: true, leader: false }, ...o,
});

t.test('messages and their metadata round-trip; no ports taken is the same as none said', async (t) => {
  const messages: GossipMessage[] = [
    { kind: 'ping', seq: 7, target: 'b', rumours: [{ kind: 'alive', node: 'a', incarnation: 3, meta: meta({ portsTaken: [80, 8080] }) }] },
    { kind: 'ack', seq: 7, rumours: [{ kind: 'suspect', node: 'c', incarnation: 1, from: 'a' }] },
    { kind: 'push-pull', reply: true, states: [{ id: 'a', incarnation: 2, status: 'alive', meta: meta() }, { id: 'b', incarnation: 1, status: 'left', meta: meta({ name: 'n2', roles: { voter: false, leader: false, replica: true } }) }] },
  ];
  for (const m of messages) t.same(decodeGossip(encodeGossip(m)), m, m.kind);
  const empty = decodeGossip(encodeGossip({ kind: 'gossip', rumours: [{ kind: 'alive', node: 'a', incarnation: 1, meta: meta({ portsTaken: [] }) }] }));
  t.same(empty, { kind: 'gossip', rumours: [{ kind: 'alive', node: 'a', incarnation: 1, meta: meta() }] });
});

t.test('ports taken that a peer could get wrong are refused, naming where', async (t) => {
  const withPorts = (portsTaken: number[]): Uint8Array => shoal.v1.GossipMessage.encode({
    gossip: {}, rumours: [{ kind: shoal.v1.GossipStatus.GOSSIP_STATUS_ALIVE, node: 'a', incarnation: 1, meta: { name: 'n1', portsTaken } }],
  }).finish();
  t.throws(() => decodeGossip(withPorts([0])), { code: 'ERR_GOSSIP_INVALID', message: /rumours\[0\]\.portsTaken has a port outside 1-65535/ });
  t.throws(() => decodeGossip(withPorts([70000])), { message: /rumours\[0\]\.portsTaken has a port outside 1-65535/ });
  const many = Array.from({ length: LIMITS.meshMaxPortsTakenReported + 1 }, (_, i) => 1000 + i);
  t.throws(() => decodeGossip(withPorts(many)), { message: new RegExp(`rumours\\[0\\]\\.portsTaken has ${many.length} ports, at most ${LIMITS.meshMaxPortsTakenReported} allowed`) });
  t.same((decodeGossip(withPorts([443])) as { rumours: { meta: NodeMeta }[] }).rumours[0]!.meta.portsTaken, [443]);
});
