/**
 * The link handshake, as pure functions: what each side proves and how a received Hello is judged.
 *
 *   proof = HMAC-SHA256(linkAuthKey(clusterKey),
 *                       label || handshakeHash || initiatorPublicKey || responderPublicKey || role)
 *
 * - handshakeHash is the hash of this connection's Noise handshake. It is the same on both ends and different on
 *   every connection, so a proof captured on one connection is worthless on any other (no replay).
 * - Both public keys are those Noise authenticated, so a proof cannot be relayed between other peers.
 * - role ('i' initiator, 'r' responder) makes the two proofs of one connection differ: a peer cannot reflect ours.
 * Verification uses timingSafeEqual, so the time taken says nothing about how much of a forged proof was right.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { shoal } from '../gen/proto.js';
import { LIMITS } from '../lib/limits.js';
import { AuthFailedError, WireVersionError } from './errors.js';
import { WIRE_VERSION } from '../wire/frame.js';

const PROOF_LABEL = 'shoal/v1/link-proof';
export const PROOF_BYTES = 32;

export type Role = 'initiator' | 'responder';

export interface VersionRange {
  min: number;
  max: number;
}

/** The wire versions this build speaks. */
export const LOCAL_WIRE_RANGE: VersionRange = { min: WIRE_VERSION, max: WIRE_VERSION };

export interface ProofInput {
  authKey: Uint8Array;
  handshakeHash: Uint8Array;
  initiatorPublicKey: Uint8Array;
  responderPublicKey: Uint8Array;
  role: Role;
}

export function computeProof(input: ProofInput): Buffer {
  return createHmac('sha256', input.authKey)
    .update(PROOF_LABEL)
    .update(input.handshakeHash)
    .update(input.initiatorPublicKey)
    .update(input.responderPublicKey)
    .update(input.role === 'initiator' ? 'i' : 'r')
    .digest();
}

/** Constant-time check of a received proof against the one expected for `input`. */
export function verifyProof(input: ProofInput, received: Uint8Array): boolean {
  const expected = computeProof(input);
  if (received.length !== expected.length) return false;
  return timingSafeEqual(expected, received);
}

/** The highest version both ranges contain, or a WireVersionError naming both ranges. */
export function negotiateVersion(local: VersionRange, remote: VersionRange): number | WireVersionError {
  const low = Math.max(local.min, remote.min);
  const high = Math.min(local.max, remote.max);
  if (low > high) return new WireVersionError(local, remote);
  return high;
}

export interface HelloFields {
  range: VersionRange;
  proof: Uint8Array;
  nodeName: string;
  agentVersion: string;
}

export function encodeHello(fields: HelloFields): Uint8Array {
  return shoal.v1.Hello.encode({
    minVersion: fields.range.min,
    maxVersion: fields.range.max,
    proof: fields.proof,
    nodeName: fields.nodeName,
    agentVersion: fields.agentVersion,
  }).finish();
}

/** Decodes and bounds-checks a Hello payload; malformed ones are an authentication failure. */
export function decodeHello(payload: Uint8Array): HelloFields | AuthFailedError {
  let hello: shoal.v1.Hello;
  try {
    hello = shoal.v1.Hello.decode(payload);
  } catch (err) {
    return new AuthFailedError(`Hello is not valid protobuf (${(err as Error).message})`);
  }
  if (hello.proof.length !== PROOF_BYTES) return new AuthFailedError(`Hello proof has ${hello.proof.length} bytes, expected ${PROOF_BYTES}`);
  if (Buffer.byteLength(hello.nodeName) > LIMITS.transportMaxNodeNameBytes) return new AuthFailedError('Hello node name is too long');
  if (Buffer.byteLength(hello.agentVersion) > LIMITS.transportMaxAgentVersionBytes) return new AuthFailedError('Hello agent version is too long');
  if (hello.minVersion === 0 || hello.minVersion > hello.maxVersion) {
    return new AuthFailedError(`Hello has an invalid version range ${hello.minVersion}..${hello.maxVersion}`);
  }
  return {
    range: { min: hello.minVersion, max: hello.maxVersion },
    proof: hello.proof,
    nodeName: hello.nodeName,
    agentVersion: hello.agentVersion,
  };
}

export function encodeReject(code: string, reason: string): Uint8Array {
  return shoal.v1.Reject.encode({ code, reason: reason.slice(0, 512) }).finish();
}

export function decodeReject(payload: Uint8Array): { code: string; reason: string } {
  try {
    const r = shoal.v1.Reject.decode(payload);
    return { code: r.code.slice(0, 64), reason: r.reason.slice(0, 512) };
  } catch (_malformed) {
    return { code: 'ERR_UNKNOWN', reason: 'malformed Reject' };
  }
}
