/**
 * The data the membership core takes in and hands out: member states, node metadata, rumours, wire messages and
 * effects. Everything here is plain data (JSON-safe), so the runtime can encode it on the wire and the simulator
 * can hash it into a trace.
 */

/** A member's status as one node sees it. See README.md for the transitions. */
export type MemberStatus = 'alive' | 'suspect' | 'dead' | 'left';

/** Resources a node offers to the scheduler, as last reported by the node itself. */
export interface NodeResources {
  cpuMillicores: number;
  memoryBytes: number;
  diskFreeBytes: number;
}

/** Roles a node holds in the control plane (later issues set them). */
export interface NodeRoles {
  /** The node is a voting member of the Raft group. */
  voter: boolean;
  /** The node believes it leads the Raft group. */
  leader: boolean;
  /**
   * The node is a read replica: a non-voting server (Raft learner) that holds the whole state. A node that is
   * neither a voter nor a replica is a client. Absent means false.
   */
  replica?: boolean;
}

/** What a node says about itself; gossiped with its alive rumour, so every change bumps its incarnation. */
export interface NodeMeta {
  name: string;
  agentVersion: string;
  /** Addresses the node can be reached at (peer socket, API...), e.g. "10.0.0.5:7645". */
  addresses: string[];
  labels: Record<string, string>;
  resources: NodeResources;
  /** Task drivers available on the node, e.g. ["docker", "exec"]. */
  drivers: string[];
  roles: NodeRoles;
  /** Ingress ports of the routing mesh another program holds on the node (absent: none). */
  portsTaken?: number[];
}

/** One member as one node sees it. */
export interface MemberSnapshot {
  id: string;
  incarnation: number;
  status: MemberStatus;
  meta: NodeMeta;
  /** Virtual time (the viewer's) at which the status last changed. */
  statusChangedAtMs: number;
}

/**
 * A rumour about one node. Its `incarnation` orders rumours about the same node: a higher incarnation always
 * wins; at equal incarnations suspect/dead/left beat alive (so only the node itself, by raising its incarnation,
 * can refute an accusation).
 */
export type Rumour =
  | { kind: 'alive'; node: string; incarnation: number; meta: NodeMeta }
  /** `from` is the accuser; independent accusers shorten the suspicion timeout (Lifeguard). */
  | { kind: 'suspect'; node: string; incarnation: number; from: string }
  | { kind: 'dead'; node: string; incarnation: number; from: string }
  /** Graceful leave, said by the node itself. */
  | { kind: 'left'; node: string; incarnation: number };

/** A member's full state as sent in push-pull (anti-entropy). */
export interface PushPullState {
  id: string;
  incarnation: number;
  status: MemberStatus;
  meta: NodeMeta;
}

/**
 * Messages between membership cores. Every message but push-pull may carry piggybacked rumours; the sender is
 * known to the receiver from the link (the runtime passes it to `receive`).
 */
export type GossipMessage =
  /** Direct probe. `target` guards against a message reaching a different node than intended. */
  | { kind: 'ping'; seq: number; target: string; rumours: Rumour[] }
  | { kind: 'ack'; seq: number; rumours: Rumour[] }
  /** Lifeguard: an intermediary that could not reach the target says so, so the requester does not blame itself. */
  | { kind: 'nack'; seq: number; rumours: Rumour[] }
  /** Indirect probe: "please ping `target` and forward its ack with my `seq`". */
  | { kind: 'ping-req'; seq: number; target: string; rumours: Rumour[] }
  /** Piggyback-only dissemination message. */
  | { kind: 'gossip'; rumours: Rumour[] }
  /** Full-state exchange; `reply` asks the receiver to answer with its own state. */
  | { kind: 'push-pull'; reply: boolean; states: PushPullState[] };

export type MemberEventKind = 'joined' | 'alive' | 'suspect' | 'dead' | 'left' | 'updated' | 'reaped';

/**
 * A change in this node's view, for the runtime (and tests). `joined`: first time seen; `alive`: back to alive
 * from suspect/dead/left; `updated`: new incarnation or metadata while alive.
 */
export interface MemberEvent {
  kind: MemberEventKind;
  member: MemberSnapshot;
  /** The status before this change (undefined for `joined`). */
  previousStatus: MemberStatus | undefined;
  previousIncarnation: number | undefined;
}

/**
 * What the core asks the runtime to do. `drainEffects()` returns persist effects first: the runtime must persist
 * the incarnation before it sends anything (a message may carry a refutation at that incarnation, and a restart
 * must never reuse it).
 */
export type MembershipEffect =
  | { kind: 'persist'; incarnation: number }
  | { kind: 'send'; to: string; message: GossipMessage }
  | { kind: 'event'; event: MemberEvent };
