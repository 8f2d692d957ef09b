/**
 * proto3 JSON for every message of every RPC service, as the specification defines it
 * (https://protobuf.dev/programming-guides/proto3/#json), in one place: the server reads requests and writes answers
 * with it, and `ShoalClient` writes requests and reads answers with it when it speaks JSON.
 *
 * Reading:
 *   - A field is spelled as its JSON name (lowerCamelCase, `jobName`) or as in the .proto (`job_name`). Both
 *     spellings of one field in one object are an error, and so is a field the message does not have. (The client
 *     reads answers with `ignoreUnknownFields`: an agent newer than the client may send fields it does not know, as
 *     binary protobuf skips unknown fields.)
 *   - `null` is the field's default value.
 *   - bytes: standard or URL-safe base64, with or without padding.
 *   - Integers: a JSON number or a decimal string ("1e3" and "5.0" too, when the value is a whole number). A
 *     fraction, or a value outside the field's type (uint32, int64...), is an error. A 64-bit value keeps all its
 *     bits when it is sent as a string; a JSON number beyond 2^53 has already lost its low bits in JSON.parse.
 *   - float and double: a number, a numeric string, "NaN", "Infinity" or "-Infinity".
 *   - enums: the value's name or its number (proto3 enums are open: an unknown number is kept).
 *   - bool: true or false; string: any JSON string without a lone UTF-16 surrogate.
 *   - Nested messages, repeated fields and maps (keys as strings) recursively. An error names the path where it
 *     happened, in the spelling the caller used (`secrets[1].data`, `updates[0].taskPorts["80x"]`), and the
 *     message type; it is an `InvalidArgumentError` (ERR_INVALID_ARGUMENT, HTTP 400).
 *
 * Writing:
 *   - JSON names (lowerCamelCase); 64-bit integers as decimal strings; bytes as standard base64 with padding; enums
 *     by name (a number without a name stays a number); NaN and the infinities as strings.
 *   - Every field without presence is written, default values included: 0, "0", "", false, [], {}, the enum's zero
 *     name. The specification allows it (protoc calls it `always_print_fields_with_no_presence`), and it is what the
 *     server answered before this module: readers (scripts, `jq`, the CLI's users) find every field without having
 *     to know its default. A message field that is not set is `null`, as Go's protojson writes it with
 *     `EmitUnpopulated` (and as before); a oneof member or `optional` field is written only when set.
 *
 * Well-known types (google.protobuf.Timestamp, Duration, Struct, wrappers...) have JSON forms of their own. No RPC
 * message uses one; one that does is refused loudly (InvariantError) until its form is added here.
 *
 * The static code in src/gen has no reflection, so the names, types and enums come from the .proto files, which ship
 * with Shoal (proto/shoal/v1), parsed with protobufjs on the first JSON call. That costs some tens of milliseconds
 * once (see src/rpc/README.md); the CLI and the peer network speak binary protobuf and never pay it.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as Protobuf from 'protobufjs';
import { InvalidArgumentError, InvariantError, ShoalError } from '../lib/errors.js';
import type { ProtoType } from './methods.js';

/** What the codec uses of protobufjs (its full build, with the .proto parser). */
type ProtobufModule = Pick<typeof Protobuf, 'Type' | 'Enum' | 'Root' | 'util'>;

export interface JsonReadOptions {
  /** Skip fields (and enum names) the message does not know instead of failing: for answers from a newer agent. */
  ignoreUnknownFields?: boolean;
}

/** Where Shoal's .proto files are, from src/rpc or dist/rpc alike. */
export const PROTO_DIR = fileURLToPath(new URL('../../proto/shoal/v1/', import.meta.url));

const INT_RANGES: Readonly<Record<string, readonly [bigint, bigint]>> = {
  int32: [-(2n ** 31n), 2n ** 31n - 1n],
  sint32: [-(2n ** 31n), 2n ** 31n - 1n],
  sfixed32: [-(2n ** 31n), 2n ** 31n - 1n],
  uint32: [0n, 2n ** 32n - 1n],
  fixed32: [0n, 2n ** 32n - 1n],
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  sint64: [-(2n ** 63n), 2n ** 63n - 1n],
  sfixed64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
  fixed64: [0n, 2n ** 64n - 1n],
};
const LONG_TYPES = new Set(['int64', 'sint64', 'sfixed64', 'uint64', 'fixed64']);
const UNSIGNED_LONG_TYPES = new Set(['uint64', 'fixed64']);
/** Digits of the largest 64-bit value: a longer integer is out of range without computing it ("1e999999999"). */
const MAX_INTEGER_DIGITS = 20;
const MAX_FLOAT = 3.4028234663852886e38;
/** JSON's number grammar, leading zeros allowed (Go's protojson accepts "007" in a string too). */
const NUMERIC_TEXT = /^(-)?(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/;
const BASE64_TEXT = /^([A-Za-z0-9+/_-]*)(={0,2})$/;
const LONE_SURROGATE = /\p{Cs}/u;
/** A key this close to a field's name (case and underscores aside) is taken for a typo of it. */
const MAX_TYPO_EDITS = 2;
/** How many names an error lists before it says "...". */
const MAX_NAMES_LISTED = 12;
const SKIP = Symbol('skip');

interface TypeIndex {
  /** Field by JSON name and by .proto name. */
  byKey: Map<string, Protobuf.Field>;
  fields: readonly Protobuf.Field[];
}

/**
 * The proto3 JSON codec over the reflection of Shoal's .proto files. Get the one instance with `loadProtoJson()`.
 */
export class ProtoJson {
  readonly #pb: ProtobufModule;
  readonly #root: Protobuf.Root;
  readonly #types = new WeakMap<object, Protobuf.Type>();
  readonly #indexes = new WeakMap<Protobuf.Type, TypeIndex>();

  constructor(pb: ProtobufModule, root: Protobuf.Root) {
    this.#pb = pb;
    this.#root = root;
  }

  /** Reads a parsed JSON value as a message of `type` (a static class from src/gen). */
  read<T>(type: ProtoType<T>, json: unknown, options: JsonReadOptions = {}): T {
    const plain = this.#readMessage(this.reflect(type), json, '', 0, options.ignoreUnknownFields === true);
    return type.fromObject(plain);
  }

  /** Writes a message of `type` (an instance, or a plain object as handlers may return) as a JSON value. */
  write(type: ProtoType<unknown>, message: unknown): Record<string, unknown> {
    return this.#writeMessage(this.reflect(type), message, 0);
  }

  /** The reflected type that describes a static class. */
  reflect(type: ProtoType<unknown>): Protobuf.Type {
    let reflected = this.#types.get(type);
    if (!reflected) {
      const url = type.getTypeUrl('');
      const fullName = url.slice(url.lastIndexOf('/') + 1);
      const found = this.#root.lookup(fullName);
      if (!(found instanceof this.#pb.Type)) {
        throw new InvariantError(`proto3 JSON: the .proto files in ${PROTO_DIR} do not define the message ${fullName}; src/gen and proto/ are out of step (rebuild with \`npm run build\`)`, { type: fullName });
      }
      reflected = found;
      this.#types.set(type, reflected);
    }
    return reflected;
  }

  #index(type: Protobuf.Type): TypeIndex {
    let index = this.#indexes.get(type);
    if (index) return index;
    const byKey = new Map<string, Protobuf.Field>();
    for (const field of type.fieldsArray) {
      const target = field.resolvedType;
      if (target && target.fullName.startsWith('.google.protobuf.')) {
        throw new InvariantError(`proto3 JSON: ${name(type)}.${field.protoName} is a ${name(target)}, a well-known type with a JSON form of its own that src/rpc/json.ts does not write or read yet: add it there`, { type: name(type), field: field.protoName });
      }
      byKey.set(field.jsonName, field);
      byKey.set(field.protoName, field);
    }
    index = { byKey, fields: type.fieldsArray };
    this.#indexes.set(type, index);
    return index;
  }

  // --- reading -----------------------------------------------------------------------------------------------------

  #readMessage(type: Protobuf.Type, json: unknown, path: string, depth: number, ignoreUnknown: boolean): Record<string, unknown> {
    if (depth > this.#pb.util.recursionLimit) throw invalid(path, name(type), `messages nested deeper than ${this.#pb.util.recursionLimit} levels`);
    if (!isJsonObject(json)) throw invalid(path, name(type), `expected a JSON object for ${name(type)}, got ${describe(json)}`);
    const { byKey } = this.#index(type);
    const out: Record<string, unknown> = {};
    const spelled = new Map<Protobuf.Field, string>();
    const oneofs = new Map<Protobuf.OneOf, string>();
    for (const [key, value] of Object.entries(json)) {
      const at = path === '' ? key : `${path}.${key}`;
      const field = byKey.get(key);
      if (!field) {
        if (ignoreUnknown) continue;
        throw invalid(at, name(type), `unknown field "${key}" in ${name(type)}${suggest(key, this.#index(type).fields)}`);
      }
      const earlier = spelled.get(field);
      if (earlier !== undefined) throw invalid(at, name(type), `field ${field.protoName} of ${name(type)} is given twice, as "${earlier}" and as "${key}"`);
      spelled.set(field, key);
      if (value === null) continue;
      if (field.partOf) {
        const other = oneofs.get(field.partOf);
        if (other !== undefined) throw invalid(at, name(type), `"${other}" and "${key}" are both in oneof ${field.partOf.name} of ${name(type)}: set at most one`);
        oneofs.set(field.partOf, key);
      }
      const read = this.#readField(field, value, at, depth, ignoreUnknown);
      if (read !== SKIP) out[field.name] = read;
    }
    return out;
  }

  #readField(field: Protobuf.Field, value: unknown, path: string, depth: number, ignoreUnknown: boolean): unknown {
    if (field.map) {
      if (!isJsonObject(value)) throw invalid(path, field, `expected a JSON object for the map ${field.protoName}, got ${describe(value)}`);
      const keyType = (field as unknown as Protobuf.MapField).keyType;
      const map: Record<string, unknown> = {};
      for (const [key, entry] of Object.entries(value)) {
        const at = `${path}[${JSON.stringify(key)}]`;
        const mapKey = readMapKey(keyType, key, at, field);
        if (entry === null) throw invalid(at, field, 'null is not a map value');
        const read = this.#readSingular(field, entry, at, depth, ignoreUnknown);
        if (read === SKIP) continue;
        if (Object.hasOwn(map, mapKey)) throw invalid(at, field, `map key "${key}" is given twice (as ${mapKey})`);
        setOwn(map, mapKey, read);
      }
      return map;
    }
    if (field.repeated) {
      if (!Array.isArray(value)) throw invalid(path, field, `expected a JSON array for the repeated field ${field.protoName}, got ${describe(value)}`);
      const items: unknown[] = [];
      value.forEach((item: unknown, i) => {
        const at = `${path}[${i}]`;
        if (item === null) throw invalid(at, field, 'null is not an element of a repeated field');
        const read = this.#readSingular(field, item, at, depth, ignoreUnknown);
        if (read !== SKIP) items.push(read);
      });
      return items;
    }
    return this.#readSingular(field, value, path, depth, ignoreUnknown);
  }

  #readSingular(field: Protobuf.Field, value: unknown, path: string, depth: number, ignoreUnknown: boolean): unknown {
    const target = field.resolvedType;
    if (target instanceof this.#pb.Type) return this.#readMessage(target, value, path, depth + 1, ignoreUnknown);
    if (target instanceof this.#pb.Enum) return readEnum(target, field, value, path, ignoreUnknown);
    return readScalar(field, value, path);
  }

  // --- writing -----------------------------------------------------------------------------------------------------

  #writeMessage(type: Protobuf.Type, message: unknown, depth: number): Record<string, unknown> {
    if (depth > this.#pb.util.recursionLimit) throw new InvariantError(`proto3 JSON: ${name(type)} nested deeper than ${this.#pb.util.recursionLimit} levels in an answer`);
    if (typeof message !== 'object' || message === null) throw new InvariantError(`proto3 JSON: a ${name(type)} to write must be an object, got ${describe(message)}`);
    const source = message as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const field of this.#index(type).fields) {
      const value = source[field.name];
      const key = field.jsonName;
      if (field.map) {
        const map: Record<string, unknown> = {};
        const keyType = (field as unknown as Protobuf.MapField).keyType;
        for (const [k, v] of Object.entries((value ?? {}) as Record<string, unknown>)) {
          setOwn(map, LONG_TYPES.has(keyType) ? String(this.#pb.util.longFromKey(k, UNSIGNED_LONG_TYPES.has(keyType))) : k, this.#writeSingular(field, v, depth));
        }
        out[key] = map;
      } else if (field.repeated) {
        out[key] = Array.from((value ?? []) as ArrayLike<unknown>, (item) => this.#writeSingular(field, item, depth));
      } else if (field.partOf || (field.hasPresence && !(field.resolvedType instanceof this.#pb.Type))) {
        // A oneof member or an `optional` field: written only when set, so that a reader can tell. protobufjs keeps a
        // set field as an own property (the prototype holds the defaults), as toObject reads it.
        if (value !== null && value !== undefined && Object.hasOwn(source, field.name)) out[key] = this.#writeSingular(field, value, depth);
      } else {
        out[key] = this.#writeSingular(field, value, depth);
      }
    }
    return out;
  }

  #writeSingular(field: Protobuf.Field, value: unknown, depth: number): unknown {
    const target = field.resolvedType;
    if (target instanceof this.#pb.Type) return value === null || value === undefined ? null : this.#writeMessage(target, value, depth + 1);
    if (target instanceof this.#pb.Enum) {
      if (typeof value === 'string') return value;
      const number = Number(value ?? 0);
      return target.valuesById[number] ?? number;
    }
    return writeScalar(field.type, value);
  }
}

let loading: Promise<ProtoJson> | undefined;

/**
 * The codec, once: the first call imports protobufjs's parser and reads the .proto files. A failure (the files are
 * missing) is not remembered, so a later call tries again.
 */
export function loadProtoJson(): Promise<ProtoJson> {
  loading ??= (async () => {
    const pb = ((await import('protobufjs')) as unknown as { default: ProtobufModule }).default;
    let files: string[];
    try {
      files = readdirSync(PROTO_DIR).filter((f) => f.endsWith('.proto')).sort().map((f) => join(PROTO_DIR, f));
    } catch (err) {
      throw new ShoalError('ERR_PROTO_FILES_MISSING', `proto3 JSON needs Shoal's .proto files, which cannot be read at ${PROTO_DIR} (${err instanceof Error ? err.message : String(err)}); install Shoal with its proto/ folder, or call the API with application/x-protobuf`, { dir: PROTO_DIR });
    }
    const root = new pb.Root().loadSync(files);
    root.resolveAll();
    return new ProtoJson(pb, root);
  })().catch((err: unknown) => {
    loading = undefined;
    throw err;
  });
  return loading;
}

// --- scalars ---------------------------------------------------------------------------------------------------------

function readScalar(field: Protobuf.Field, value: unknown, path: string): unknown {
  const type = field.type;
  switch (type) {
    case 'string':
      if (typeof value !== 'string') throw invalid(path, field, `expected a string, got ${describe(value)}`);
      if (LONE_SURROGATE.test(value)) throw invalid(path, field, 'the string holds a lone UTF-16 surrogate, which is not valid Unicode');
      return value;
    case 'bool':
      if (typeof value !== 'boolean') throw invalid(path, field, `expected true or false, got ${describe(value)}`);
      return value;
    case 'bytes':
      return readBytes(value, path, field);
    case 'double':
    case 'float':
      return readFloat(type, value, path, field);
    default: {
      if (!(type in INT_RANGES)) throw new InvariantError(`proto3 JSON: no mapping for the scalar type ${type} of ${field.fullName}`);
      const n = readInteger(type, value, path, field);
      // 64-bit values go to the static fromObject as decimal strings: Long.fromValue keeps every bit.
      return LONG_TYPES.has(type) ? n.toString() : Number(n);
    }
  }
}

function readInteger(type: string, value: unknown, path: string, field: Protobuf.Field): bigint {
  let n: bigint;
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw invalid(path, field, `${value} is not an integer (${type})`);
    n = BigInt(value);
  } else if (typeof value === 'string') {
    n = integerFromText(value, type, path, field);
  } else {
    throw invalid(path, field, `expected a ${type} as a JSON number or a decimal string, got ${describe(value)}`);
  }
  const [min, max] = INT_RANGES[type]!;
  if (n < min || n > max) throw invalid(path, field, `${typeof value === 'string' ? `"${value}"` : value} is out of range for ${type} (${min} to ${max})`);
  return n;
}

/** A decimal integer, exactly: "18446744073709551615", "-5", "1e3", "2.50e1"; a fraction is an error. */
function integerFromText(text: string, type: string, path: string, field: Protobuf.Field): bigint {
  const match = NUMERIC_TEXT.exec(text);
  if (!match) throw invalid(path, field, `"${text}" is not a decimal integer (${type})`);
  const [, sign, whole, fraction = '', exponent = '0'] = match;
  let digits = `${whole}${fraction}`.replace(/^0+/, '');
  let scale = Number(exponent) - fraction.length;
  if (digits === '') return 0n;
  if (scale < 0) {
    const cut = digits.length + scale;
    const dropped = cut <= 0 ? digits : digits.slice(cut);
    if (!/^0*$/.test(dropped)) throw invalid(path, field, `"${text}" is not an integer (${type})`);
    digits = cut <= 0 ? '0' : digits.slice(0, cut);
    scale = 0;
  }
  if (digits.length + scale > MAX_INTEGER_DIGITS) throw invalid(path, field, `"${text}" is out of range for ${type}`);
  const n = BigInt(digits) * 10n ** BigInt(scale);
  return sign ? -n : n;
}

function readFloat(type: 'double' | 'float', value: unknown, path: string, field: Protobuf.Field): number {
  let n: number;
  if (typeof value === 'number') {
    n = value;
  } else if (typeof value === 'string') {
    if (value === 'NaN') return NaN;
    if (value === 'Infinity') return Infinity;
    if (value === '-Infinity') return -Infinity;
    if (!NUMERIC_TEXT.test(value)) throw invalid(path, field, `"${value}" is not a number (${type})`);
    n = Number(value);
  } else {
    throw invalid(path, field, `expected a ${type} as a JSON number or a numeric string, got ${describe(value)}`);
  }
  if (!Number.isFinite(n) || (type === 'float' && Math.abs(n) > MAX_FLOAT)) throw invalid(path, field, `${describe(value)} is out of range for ${type}`);
  return n;
}

function readBytes(value: unknown, path: string, field: Protobuf.Field): Buffer {
  if (typeof value !== 'string') throw invalid(path, field, `expected base64 text, got ${describe(value)}`);
  const match = BASE64_TEXT.exec(value);
  let why: string | undefined;
  if (!match) {
    const offset = value.search(/[^A-Za-z0-9+/_-]/);
    why = value[offset] === '=' ? `"=" at offset ${offset} is padding before the end` : `${JSON.stringify(value[offset])} at offset ${offset} is not a base64 character`;
  } else if (/[+/]/.test(match[1]!) && /[-_]/.test(match[1]!)) {
    why = 'it mixes the standard (+ /) and URL-safe (- _) alphabets';
  } else if (match[1]!.length % 4 === 1) {
    why = `${match[1]!.length} characters cannot encode whole bytes`;
  } else if (match[2] !== '' && value.length % 4 !== 0) {
    why = `${match[2]!.length} "=" do not pad ${match[1]!.length} characters to a multiple of 4`;
  }
  if (why !== undefined || !match) throw invalid(path, field, `not valid base64 (standard or URL-safe, padding optional): ${why}`);
  return Buffer.from(match[1]!, 'base64');
}

function readEnum(type: Protobuf.Enum, field: Protobuf.Field, value: unknown, path: string, ignoreUnknown: boolean): number | typeof SKIP {
  if (typeof value === 'string') {
    if (Object.hasOwn(type.values, value)) return type.values[value]!;
    if (ignoreUnknown) return SKIP;
    throw invalid(path, field, `"${value}" is not a value of ${name(type)} (${listed(Object.keys(type.values))}; or a number)`);
  }
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < -(2 ** 31) || value > 2 ** 31 - 1) throw invalid(path, field, `${value} is not an enum number (a 32-bit integer) of ${name(type)}`);
    return value;
  }
  throw invalid(path, field, `expected a ${name(type)} name or number, got ${describe(value)}`);
}

function readMapKey(keyType: string, key: string, path: string, field: Protobuf.Field): string {
  if (keyType === 'string') {
    if (LONE_SURROGATE.test(key)) throw invalid(path, field, 'the map key holds a lone UTF-16 surrogate, which is not valid Unicode');
    return key;
  }
  if (keyType === 'bool') {
    if (key !== 'true' && key !== 'false') throw invalid(path, field, `map key "${key}" is not a bool ("true" or "false")`);
    return key;
  }
  const range = INT_RANGES[keyType];
  if (!range) throw new InvariantError(`proto3 JSON: no mapping for the map key type ${keyType} of ${field.fullName}`);
  if (!/^-?\d{1,20}$/.test(key)) throw invalid(path, field, `map key "${key}" is not a ${keyType} written in decimal`);
  const n = BigInt(key);
  if (n < range[0] || n > range[1]) throw invalid(path, field, `map key "${key}" is out of range for ${keyType} (${range[0]} to ${range[1]})`);
  return n.toString();
}

function writeScalar(type: string, value: unknown): unknown {
  switch (type) {
    case 'string':
      return value === null || value === undefined ? '' : String(value);
    case 'bool':
      return value === true;
    case 'bytes':
      if (value === null || value === undefined) return '';
      if (typeof value === 'string') return value; // protobufjs takes bytes given as a string to be base64 already
      if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
      return Buffer.from(value as number[]).toString('base64');
    case 'double':
    case 'float': {
      const n = Number(value ?? 0);
      return Number.isFinite(n) ? n : String(n);
    }
    default:
      return LONG_TYPES.has(type) ? longToDecimal(value, UNSIGNED_LONG_TYPES.has(type)) : Number(value ?? 0);
  }
}

/** A 64-bit value as protobufjs holds it (a Long, or {low, high}, a number, a bigint or a string) in decimal. */
function longToDecimal(value: unknown, unsigned: boolean): string {
  if (value === null || value === undefined) return '0';
  if (typeof value === 'bigint' || typeof value === 'string') return value.toString();
  if (typeof value === 'number') return Number.isFinite(value) ? BigInt(Math.trunc(value)).toString() : '0';
  const { low, high } = value as { low: number; high: number };
  const bits = (BigInt(high >>> 0) << 32n) | BigInt(low >>> 0);
  return (unsigned ? bits : BigInt.asIntN(64, bits)).toString();
}

// --- errors ------------------------------------------------------------------------------------------------------------

/** A bad value at `path`; `where` is the message type, or a field of it, that the value is for. */
function invalid(path: string, where: string | Protobuf.Field, problem: string): InvalidArgumentError {
  const type = typeof where === 'string' ? where : name(where.parent ?? where);
  return new InvalidArgumentError(path === '' ? problem : `${path}: ${problem}`, { field: path, type });
}

/** "shoal.v1.Member", not protobufjs's ".shoal.v1.Member". */
function name(type: Protobuf.ReflectionObject): string {
  return type.fullName.replace(/^\./, '');
}

/** `object[key] = value`, where a key "__proto__" is a key like any other rather than the prototype. */
function setOwn(object: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
  else object[key] = value;
}

function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function listed(names: readonly string[]): string {
  return names.length > MAX_NAMES_LISTED ? `${names.slice(0, MAX_NAMES_LISTED).join(', ')}, ...` : names.join(', ');
}

/** " (did you mean "jobName"?)" when a field is spelled nearly so (case, underscores, a typo), else the fields. */
function suggest(key: string, fields: readonly Protobuf.Field[]): string {
  const fold = (s: string): string => s.replace(/_/g, '').toLowerCase();
  let best: { field: Protobuf.Field; distance: number } | undefined;
  for (const field of fields) {
    const distance = editDistance(fold(key), fold(field.jsonName), MAX_TYPO_EDITS);
    if (distance <= MAX_TYPO_EDITS && (!best || distance < best.distance)) best = { field, distance };
  }
  if (best) return ` (did you mean "${best.field.jsonName}"?)`;
  return fields.length === 0 ? ' (it has no fields)' : ` (its fields: ${listed(fields.map((f) => f.jsonName))})`;
}

/** Levenshtein distance, or `limit + 1` as soon as it must exceed `limit`. */
function editDistance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    if (Math.min(...current) > limit) return limit + 1;
    previous = current;
  }
  return previous[b.length]!;
}
