/**
 * XXH64 (xxHash, 64 bits, by Yann Collet), the hash that places a partition key in the int64 space.
 *
 * Why XXH64: it is a published, stable algorithm with implementations in every language (Go's cespare/xxhash,
 * Python's xxhash, .NET's System.IO.Hashing), so a client can compute a key's partition itself, and its final
 * avalanche spreads keys that differ in one character over the whole 64 bits. FNV-1a 64, the other cheap candidate,
 * leaves the high bits nearly equal for keys that differ only in their last bytes ("user1", "user2"), and uniform
 * ranges split the space by its high bits, so such keys would crowd into one partition.
 *
 * The position of a key is XXH64(UTF-8 bytes of the key, seed 0), read as a two's-complement signed int64.
 * Changing any of that moves every key to another partition: it is part of the on-disk format.
 *
 * BigInt arithmetic keeps this short and obviously right; a key is at most LIMITS.partitionKeyMaxBytes long, so the
 * cost (a few microseconds) is small next to a Raft round trip.
 */
import { encodeUtf8 } from './bytes.js';

const MASK = 0xffff_ffff_ffff_ffffn;
const P1 = 0x9e37_79b1_85eb_ca87n;
const P2 = 0xc2b2_ae3d_27d4_eb4fn;
const P3 = 0x1656_67b1_9e37_79f9n;
const P4 = 0x85eb_ca77_c2b2_ae63n;
const P5 = 0x27d4_eb2f_1656_67c5n;

function rotl(x: bigint, r: bigint): bigint {
  return ((x << r) | (x >> (64n - r))) & MASK;
}

function round(acc: bigint, input: bigint): bigint {
  acc = (acc + input * P2) & MASK;
  acc = rotl(acc, 31n);
  return (acc * P1) & MASK;
}

function mergeRound(acc: bigint, value: bigint): bigint {
  acc ^= round(0n, value);
  return (acc * P1 + P4) & MASK;
}

/** XXH64 of `bytes` with `seed`, as an unsigned 64-bit bigint. */
export function xxh64(bytes: Uint8Array, seed = 0n): bigint {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const len = bytes.length;
  seed &= MASK;
  let i = 0;
  let h: bigint;
  if (len >= 32) {
    let v1 = (seed + P1 + P2) & MASK;
    let v2 = (seed + P2) & MASK;
    let v3 = seed;
    let v4 = (seed - P1) & MASK;
    for (; i + 32 <= len; i += 32) {
      v1 = round(v1, view.getBigUint64(i, true));
      v2 = round(v2, view.getBigUint64(i + 8, true));
      v3 = round(v3, view.getBigUint64(i + 16, true));
      v4 = round(v4, view.getBigUint64(i + 24, true));
    }
    h = (rotl(v1, 1n) + rotl(v2, 7n) + rotl(v3, 12n) + rotl(v4, 18n)) & MASK;
    h = mergeRound(h, v1);
    h = mergeRound(h, v2);
    h = mergeRound(h, v3);
    h = mergeRound(h, v4);
  } else {
    h = (seed + P5) & MASK;
  }
  h = (h + BigInt(len)) & MASK;
  for (; i + 8 <= len; i += 8) {
    h ^= round(0n, view.getBigUint64(i, true));
    h = (rotl(h, 27n) * P1 + P4) & MASK;
  }
  if (i + 4 <= len) {
    h ^= (BigInt(view.getUint32(i, true)) * P1) & MASK;
    h = (rotl(h, 23n) * P2 + P3) & MASK;
    i += 4;
  }
  for (; i < len; i++) {
    h ^= (BigInt(bytes[i] as number) * P5) & MASK;
    h = (rotl(h, 11n) * P1) & MASK;
  }
  h ^= h >> 33n;
  h = (h * P2) & MASK;
  h ^= h >> 29n;
  h = (h * P3) & MASK;
  h ^= h >> 32n;
  return h;
}

/** Where a partition key falls in the int64 space: XXH64 of its UTF-8 bytes, seed 0, as a signed int64. */
export function keyPosition(key: string): bigint {
  return BigInt.asIntN(64, xxh64(encodeUtf8(key)));
}
