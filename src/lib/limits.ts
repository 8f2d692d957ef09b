/**
 * Every limit Shoal has, in one place, with its unit in its name.
 *
 * A limit is what keeps a bad peer, a bad file or a burst of load from using unbounded memory or time. Modules
 * import the value they need from here rather than inventing a local constant, and `checkLimits()` asserts the
 * relations between them when an agent starts (and in a test), so a change that breaks one fails at once.
 */
import { invariant } from './assert.js';

const KiB = 1024;
const MiB = 1024 * KiB;

export const LIMITS = {
  // --- Wire ---------------------------------------------------------------------------------------------------
  /** Largest frame (length prefix excluded) a peer may send; checked before the body is buffered. */
  maxFrameBytes: 4 * MiB,
  /** Bytes of the length prefix in front of every frame. */
  frameHeaderBytes: 4,
  /** Largest payload a single envelope may carry (a frame also holds the envelope's own fields). */
  maxEnvelopePayloadBytes: 4 * MiB - 1 * KiB,
  /** Longest group id (Raft group or partition name) an envelope may carry. */
  maxGroupIdBytes: 256,

  // --- Simulator ------------------------------------------------------------------------------------------------
  /** Default largest message the simulated network carries; bigger ones are dropped and traced. */
  simMaxMessageBytes: 1 * MiB,
  /** Events kept in memory for printing when an invariant fails. */
  simTraceTailEvents: 64,
  /** Hard stop for one simulation run, so a livelocked scenario cannot hang CI. */
  simMaxEventsPerRun: 5_000_000,
  /** Messages in flight on the simulated network at once; more are dropped and traced. */
  simMaxInFlightMessages: 1_000_000,

  // --- Logging --------------------------------------------------------------------------------------------------
  /** Longest string field a log line keeps; longer ones are cut. */
  maxLogFieldChars: 4 * KiB,
} as const;

export type Limits = typeof LIMITS;

/** Asserts the relations between limits. Called at agent start-up and by the limits test. */
export function checkLimits(limits: Record<keyof Limits, number> = LIMITS): void {
  for (const [name, value] of Object.entries(limits)) {
    invariant(Number.isSafeInteger(value) && value > 0, `limit ${name} must be a positive integer, got ${value}`);
  }
  invariant(limits.maxEnvelopePayloadBytes + limits.maxGroupIdBytes + 64 <= limits.maxFrameBytes,
    'an envelope with the largest payload and group id must fit in the largest frame');
  invariant(limits.maxFrameBytes < 2 ** (8 * limits.frameHeaderBytes), 'the frame length prefix must be able to express maxFrameBytes');
  invariant(limits.simMaxMessageBytes <= limits.maxFrameBytes, 'the simulator must not accept messages the real wire would refuse');
}
