/** Typed errors of the peer network. Codes are part of Shoal's contract; tests and the runtime match on them. */
import { ShoalError } from '../lib/errors.js';

/** A call on a transport that is not running (before start() or after stop()). */
export class TransportStoppedError extends ShoalError {
  constructor(operation: string) {
    super('ERR_TRANSPORT_STOPPED', `transport: cannot ${operation}: the transport is not running (call start() first)`, { operation });
  }
}

/** No authenticated link to the peer: call connect(nodeId) and wait for onLinkUp, or rely on gossip to retry. */
export class NoLinkError extends ShoalError {
  constructor(nodeId: string) {
    super('ERR_NO_LINK', `transport: no authenticated link to node ${nodeId.slice(0, 16)}…`, { nodeId });
  }
}

/** The link's send queue is full: the peer does not read fast enough. The message was not queued. */
export class SendQueueFullError extends ShoalError {
  constructor(nodeId: string, queuedFrames: number, queuedBytes: number) {
    super('ERR_SEND_QUEUE_FULL', `transport: send queue to node ${nodeId.slice(0, 16)}… is full (${queuedFrames} frames, ${queuedBytes} bytes); message dropped`,
      { nodeId, queuedFrames, queuedBytes });
  }
}

/** A peer failed the cluster-key proof, or sent something other than Hello before it was authenticated. */
export class AuthFailedError extends ShoalError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('ERR_AUTH_FAILED', message, details);
  }
}

/** The two agents' wire version ranges do not overlap. */
export class WireVersionError extends ShoalError {
  constructor(local: { min: number; max: number }, remote: { min: number; max: number }) {
    super('ERR_WIRE_VERSION',
      `incompatible wire versions: this agent speaks ${local.min}..${local.max}, the peer speaks ${remote.min}..${remote.max}; upgrade the older agent`,
      { local, remote });
  }
}

/** The cluster key or node key could not be read, or is malformed. */
export class KeyFileError extends ShoalError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('ERR_KEY_FILE', message, details);
  }
}
