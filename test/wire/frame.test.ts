import t from 'tap';
import fc from 'fast-check';
import { encodeFrame, FrameDecoder, decodeEnvelope, MessageType, WIRE_VERSION } from '../../src/wire/frame.js';
import { DecodeError, LimitExceededError } from '../../src/lib/errors.js';
import { LIMITS } from '../../src/lib/limits.js';

const hello = { type: MessageType.MESSAGE_TYPE_HELLO, group: '', payload: new Uint8Array([1, 2, 3]) };

t.test('frames round-trip, whole or split at every byte', async (t) => {
  const frames = [encodeFrame(hello), encodeFrame({ type: MessageType.MESSAGE_TYPE_RAFT, group: 'jobs', payload: new Uint8Array(1000).fill(7) })];
  const all = Buffer.concat(frames);
  const whole = new FrameDecoder('test').push(all);
  t.equal(whole.length, 2);
  t.equal(whole[0]!.version, WIRE_VERSION);
  t.same([...whole[0]!.payload], [1, 2, 3]);
  t.equal(whole[1]!.group, 'jobs');
  for (let cut = 0; cut <= all.length; cut++) {
    const d = new FrameDecoder('test');
    const got = [...d.push(all.subarray(0, cut)), ...d.push(all.subarray(cut))];
    if (got.length !== 2) t.fail(`split at ${cut} gave ${got.length} envelopes`);
  }
  const d = new FrameDecoder('test');
  const oneByOne = [...all].flatMap((b) => d.push(new Uint8Array([b])));
  t.equal(oneByOne.length, 2);
  t.equal(d.bufferedBytes, 0);
  t.doesNotThrow(() => d.end());
});

t.test('an oversized length is refused as soon as the header arrives, before the body is buffered', async (t) => {
  const d = new FrameDecoder('peer 1.2.3.4', { maxFrameBytes: 1024, maxGroupIdBytes: 16 });
  const header = new Uint8Array(4);
  new DataView(header.buffer).setUint32(0, 1025);
  const err = t.throws(() => d.push(header)) as DecodeError;
  t.equal(err.code, 'ERR_FRAME_TOO_LARGE');
  t.match(err.message, /peer 1\.2\.3\.4: frame of 1025 bytes exceeds the limit of 1024 bytes/);
  t.equal(d.bufferedBytes, 0, 'nothing was kept');
  t.throws(() => d.push(new Uint8Array([0])), { code: 'ERR_FRAME_TOO_LARGE' }, 'a failed decoder stays failed');
  t.throws(() => d.end(), { code: 'ERR_FRAME_TOO_LARGE' });
});

t.test('encoding refuses what the other side would refuse', async (t) => {
  t.throws(() => encodeFrame({ ...hello, payload: new Uint8Array(2000) }, { maxFrameBytes: 1024, maxGroupIdBytes: 16 }), LimitExceededError);
  t.throws(() => encodeFrame({ ...hello, group: 'x'.repeat(17) }, { maxFrameBytes: 1024, maxGroupIdBytes: 16 }), { code: 'ERR_GROUP_ID_TOO_LONG' });
  t.throws(() => encodeFrame({ ...hello, type: 0 as MessageType }), { code: 'ERR_FRAME_INVALID' });
  t.throws(() => encodeFrame({ ...hello, type: 999 as MessageType }), { code: 'ERR_FRAME_INVALID' });
});

t.test('a truncated stream, an empty frame, an unknown type and a missing version are typed errors', async (t) => {
  const frame = encodeFrame(hello);
  const d = new FrameDecoder('test');
  d.push(frame.subarray(0, frame.length - 1));
  t.throws(() => d.end(), { code: 'ERR_FRAME_TRUNCATED', message: /stream ended inside a frame/ });
  const d2 = new FrameDecoder('test');
  d2.push(new Uint8Array([0, 0]));
  t.throws(() => d2.end(), { code: 'ERR_FRAME_TRUNCATED' });
  t.throws(() => new FrameDecoder('test').push(new Uint8Array([0, 0, 0, 0])), { code: 'ERR_FRAME_INVALID', message: /empty frame/ });
  // type 999 (field 2 varint), version 1 (field 1 varint)
  t.throws(() => decodeEnvelope(new Uint8Array([0x08, 0x01, 0x10, 0xe7, 0x07]), 'test'), { code: 'ERR_FRAME_INVALID', message: /unknown message type 999/ });
  t.throws(() => decodeEnvelope(new Uint8Array([0x10, 0x01]), 'test'), { code: 'ERR_FRAME_INVALID', message: /no wire version/ });
  t.throws(() => decodeEnvelope(new Uint8Array([0x08, 0x01, 0x10, 0x01, 0x1a, 0x05, 0x61]), 'test'), { code: 'ERR_FRAME_INVALID', message: /not valid protobuf/ });
  const longGroup = encodeFrame({ ...hello, group: 'g'.repeat(40) });
  t.throws(() => new FrameDecoder('test', { maxFrameBytes: 1024, maxGroupIdBytes: 16 }).push(longGroup), { code: 'ERR_FRAME_INVALID', message: /group id is longer/ });
});

t.test('fuzz: random and truncated bytes only ever yield envelopes or typed decode errors', async (t) => {
  const valid = Buffer.concat([encodeFrame(hello), encodeFrame({ type: MessageType.MESSAGE_TYPE_GOSSIP, group: 'g', payload: new Uint8Array(50).fill(1) })]);
  const limits = { maxFrameBytes: 4096, maxGroupIdBytes: LIMITS.maxGroupIdBytes };
  const feed = (chunks: Uint8Array[]): boolean => {
    const d = new FrameDecoder('fuzz', limits);
    try {
      for (const c of chunks) d.push(c);
      d.end();
      return true;
    } catch (err) {
      return err instanceof DecodeError && typeof err.code === 'string' && err.code.startsWith('ERR_FRAME_');
    }
  };
  fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }), feed), { numRuns: 3000 });
  fc.assert(fc.property(fc.integer({ min: 0, max: valid.length }), fc.integer({ min: 0, max: valid.length - 1 }), fc.integer({ min: 0, max: 255 }), (cut, at, byte) => {
    const mutated = Buffer.from(valid);
    mutated[at] = byte;
    return feed([mutated.subarray(0, cut)]) && feed([mutated]);
  }), { numRuns: 3000 });
  // Valid length prefix with random body: exercises the protobuf decoder itself.
  fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 200 }), (body) => {
    const frame = new Uint8Array(4 + body.length);
    new DataView(frame.buffer).setUint32(0, body.length);
    frame.set(body, 4);
    return feed([frame]);
  }), { numRuns: 5000 });
  t.pass('no untyped exception escaped');
});
