/**
 * The frame codec: how envelopes travel on a byte stream (a Noise-encrypted hyperswarm link, a file).
 *
 *   frame = uint32 big-endian length || Envelope (protobuf), length <= LIMITS.maxFrameBytes
 *
 * The decoder checks the length against the limit as soon as the 4 header bytes are in, before it buffers any of
 * the body, so a peer cannot make us hold more than one maximum frame per link. Any error poisons the decoder: the
 * stream is out of sync and the only safe thing is to close that one link.
 */
import { LIMITS } from '../lib/limits.js';
import { DecodeError, LimitExceededError } from '../lib/errors.js';
import { shoal } from '../gen/proto.js';

export const MessageType = shoal.v1.MessageType;
export type MessageType = shoal.v1.MessageType;
export const WIRE_VERSION = shoal.v1.WireVersion.WIRE_VERSION_1;

export interface Envelope {
  version: number;
  type: MessageType;
  group: string;
  payload: Uint8Array;
}

export interface FrameLimits {
  maxFrameBytes: number;
  maxGroupIdBytes: number;
}

const DEFAULT_LIMITS: FrameLimits = { maxFrameBytes: LIMITS.maxFrameBytes, maxGroupIdBytes: LIMITS.maxGroupIdBytes };
const HEADER_BYTES = LIMITS.frameHeaderBytes;
const KNOWN_TYPES = new Set<number>(Object.values(MessageType).filter((v): v is number => typeof v === 'number'));

export class FrameTooLargeError extends DecodeError {
  constructor(lengthBytes: number, maxBytes: number, where: string) {
    super('ERR_FRAME_TOO_LARGE', `${where}: frame of ${lengthBytes} bytes exceeds the limit of ${maxBytes} bytes`, { lengthBytes, maxBytes, where });
  }
}

export class FrameTruncatedError extends DecodeError {
  constructor(haveBytes: number, needBytes: number, where: string) {
    super('ERR_FRAME_TRUNCATED', `${where}: stream ended inside a frame (${haveBytes} of ${needBytes} bytes)`, { haveBytes, needBytes, where });
  }
}

export class FrameInvalidError extends DecodeError {
  constructor(message: string, where: string, cause?: unknown) {
    super('ERR_FRAME_INVALID', `${where}: ${message}`, { where }, cause === undefined ? undefined : { cause });
  }
}

/** Encodes one envelope as a frame. Refuses (typed error, nothing sent) an envelope that would exceed the limit. */
export function encodeFrame(envelope: Omit<Envelope, 'version'> & { version?: number }, limits: FrameLimits = DEFAULT_LIMITS): Uint8Array {
  if (!KNOWN_TYPES.has(envelope.type) || envelope.type === MessageType.MESSAGE_TYPE_UNSPECIFIED) {
    throw new FrameInvalidError(`cannot send an envelope of unknown message type ${envelope.type}`, 'encodeFrame');
  }
  if (Buffer.byteLength(envelope.group) > limits.maxGroupIdBytes) {
    throw new LimitExceededError('ERR_GROUP_ID_TOO_LONG', `group id is longer than ${limits.maxGroupIdBytes} bytes`, { group: envelope.group.slice(0, 64) });
  }
  const body = shoal.v1.Envelope.encode({
    version: envelope.version ?? WIRE_VERSION,
    type: envelope.type,
    group: envelope.group,
    payload: envelope.payload,
  }).finish();
  if (body.length > limits.maxFrameBytes) {
    throw new LimitExceededError('ERR_FRAME_TOO_LARGE', `frame of ${body.length} bytes exceeds the limit of ${limits.maxFrameBytes} bytes`,
      { lengthBytes: body.length, maxBytes: limits.maxFrameBytes });
  }
  const frame = new Uint8Array(HEADER_BYTES + body.length);
  new DataView(frame.buffer).setUint32(0, body.length, false);
  frame.set(body, HEADER_BYTES);
  return frame;
}

/**
 * Decodes a frame that arrived alone, as one datagram: its length prefix must match what came. Throws a DecodeError
 * naming `where` otherwise (the caller drops the datagram; a stream's framing is not affected).
 */
export function decodeDatagram(bytes: Uint8Array, where: string, limits: FrameLimits = DEFAULT_LIMITS): Envelope {
  if (bytes.length < HEADER_BYTES) throw new FrameTruncatedError(bytes.length, HEADER_BYTES, where);
  const length = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, false);
  if (length > limits.maxFrameBytes) throw new FrameTooLargeError(length, limits.maxFrameBytes, where);
  if (length !== bytes.length - HEADER_BYTES) throw new FrameInvalidError(`datagram holds ${bytes.length - HEADER_BYTES} bytes after its header, which says ${length}`, where);
  return decodeEnvelope(bytes.subarray(HEADER_BYTES), where, limits);
}

/** Decodes one envelope body (without the length prefix), validating every field. */
export function decodeEnvelope(body: Uint8Array, where: string, limits: FrameLimits = DEFAULT_LIMITS): Envelope {
  let decoded: shoal.v1.Envelope;
  try {
    decoded = shoal.v1.Envelope.decode(body);
  } catch (err) {
    throw new FrameInvalidError(`envelope is not valid protobuf (${err instanceof Error ? err.message : String(err)})`, where, err);
  }
  if (decoded.version === 0) throw new FrameInvalidError('envelope has no wire version', where);
  const type = decoded.type as number;
  if (!KNOWN_TYPES.has(type) || type === MessageType.MESSAGE_TYPE_UNSPECIFIED) {
    throw new FrameInvalidError(`envelope has unknown message type ${type}`, where);
  }
  if (Buffer.byteLength(decoded.group) > limits.maxGroupIdBytes) {
    throw new FrameInvalidError(`envelope group id is longer than ${limits.maxGroupIdBytes} bytes`, where);
  }
  return { version: decoded.version, type: decoded.type, group: decoded.group, payload: decoded.payload };
}

/**
 * Incremental frame decoder for one stream. Feed it chunks as they arrive; it returns every complete envelope.
 * Memory held is bounded by one maximum frame plus one chunk.
 */
export class FrameDecoder {
  readonly #where: string;
  readonly #limits: FrameLimits;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #expected = -1;
  #failed: DecodeError | undefined;

  constructor(where: string, limits: FrameLimits = DEFAULT_LIMITS) {
    this.#where = where;
    this.#limits = limits;
  }

  /** Bytes received but not yet returned as envelopes. */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  push(chunk: Uint8Array): Envelope[] {
    if (this.#failed) throw this.#failed;
    try {
      return this.#push(chunk);
    } catch (err) {
      if (err instanceof DecodeError) {
        this.#failed = err;
        this.#chunks = [];
        this.#buffered = 0;
      }
      throw err;
    }
  }

  /** Call when the stream ends: throws if it ended inside a frame. */
  end(): void {
    if (this.#failed) throw this.#failed;
    if (this.#buffered > 0) {
      const need = this.#expected >= 0 ? HEADER_BYTES + this.#expected : HEADER_BYTES;
      this.#failed = new FrameTruncatedError(this.#buffered, need, this.#where);
      throw this.#failed;
    }
  }

  #push(chunk: Uint8Array): Envelope[] {
    const out: Envelope[] = [];
    if (chunk.length > 0) {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
    }
    for (;;) {
      if (this.#expected < 0) {
        if (this.#buffered < HEADER_BYTES) return out;
        const header = this.#take(HEADER_BYTES);
        const length = new DataView(header.buffer, header.byteOffset, HEADER_BYTES).getUint32(0, false);
        if (length > this.#limits.maxFrameBytes) throw new FrameTooLargeError(length, this.#limits.maxFrameBytes, this.#where);
        if (length === 0) throw new FrameInvalidError('empty frame', this.#where);
        this.#expected = length;
      }
      if (this.#buffered < this.#expected) return out;
      const body = this.#take(this.#expected);
      this.#expected = -1;
      out.push(decodeEnvelope(body, this.#where, this.#limits));
    }
  }

  /** Removes and returns exactly `n` buffered bytes, copying only when they span chunks. */
  #take(n: number): Uint8Array {
    const first = this.#chunks[0] as Uint8Array;
    if (first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
      this.#buffered -= n;
      return out;
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const head = this.#chunks[0] as Uint8Array;
      const want = Math.min(n - filled, head.length);
      out.set(head.subarray(0, want), filled);
      filled += want;
      if (want === head.length) this.#chunks.shift();
      else this.#chunks[0] = head.subarray(want);
    }
    this.#buffered -= n;
    return out;
  }
}
