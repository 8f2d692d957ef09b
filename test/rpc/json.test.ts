/**
 * proto3 JSON on the real RPC server (src/rpc/json.ts): every method of every service, in both spellings, through
 * curl-like requests and through ShoalClient with `encoding: 'json'`; then each rule of the mapping on its own.
 */
import t, { type Test } from 'tap';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import protobuf from 'protobufjs';
import * as methods from '../../src/rpc/methods.js';
import { RpcServer, ShoalClient, type MethodDescriptor, type ProtoType } from '../../src/rpc/index.js';
import { loadProtoJson, ProtoJson } from '../../src/rpc/json.js';
import { shoal } from '../../src/gen/proto.js';

type Json = Record<string, unknown>;
type Descriptor = MethodDescriptor<unknown, unknown>;

const codec = await loadProtoJson();
const descriptors = (Object.values(methods) as unknown[]).filter((v): v is Descriptor => typeof v === 'object' && v !== null && 'service' in v && 'method' in v);
const pathOf = (d: Descriptor): string => `/rpc/${d.service}/${d.method}`;

/** A message's content in one comparable form (64-bit values and bytes as strings, defaults present). */
const view = (type: ProtoType<unknown>, message: unknown): Json => type.toObject(message, { longs: String, bytes: String, enums: String, defaults: true, arrays: true, objects: true });

const isType = (x: unknown): x is protobuf.Type => typeof x === 'object' && x !== null && 'fieldsArray' in x;
const isEnum = (x: unknown): x is protobuf.Enum => typeof x === 'object' && x !== null && 'valuesById' in x;

/**
 * Every field set to a value that is not its default, and one that tells mistakes apart: 64-bit values beyond 2^53,
 * bytes whose base64 has "+", "/" and padding, two entries in every map and two elements in every repeated field.
 */
function sample(type: protobuf.Type, depth = 0): Json {
  const value = (field: protobuf.Field, i: number): unknown => {
    const target = field.resolvedType;
    if (isType(target)) return depth < 2 ? sample(target, depth + 1) : {};
    if (isEnum(target)) return Object.values(target.values).at(-1 - i);
    switch (field.type) {
      case 'string': return `s${i} ☃ "quoted"`;
      case 'bool': return true;
      case 'bytes': return Buffer.from([0xfb, 0xff, 0xbf, i]);
      case 'double': return 1.5;
      case 'float': return 0.25;
      case 'int32': case 'sint32': case 'sfixed32': return -2147483648 + i;
      case 'uint32': case 'fixed32': return 4294967295 - i;
      case 'uint64': case 'fixed64': return ['18446744073709551615', '9007199254740993'][i];
      default: return ['-9223372036854775808', '9007199254740993'][i];
    }
  };
  const key = (keyType: string, i: number): string => (keyType === 'string' ? `k${i}` : keyType === 'bool' ? String(i === 0) : String(8080 + i));
  const out: Json = {};
  for (const field of type.fieldsArray) {
    if (field.map) out[field.name] = Object.fromEntries([0, 1].map((i) => [key((field as unknown as protobuf.MapField).keyType, i), value(field, i)]));
    else if (field.repeated) out[field.name] = [value(field, 0), value(field, 1)];
    else out[field.name] = value(field, 0);
  }
  return out;
}

/** The same JSON with every field named as in the .proto (snake_case); map keys are data and stay as they are. */
function snakeCase(type: protobuf.Type, json: Json): Json {
  const out: Json = {};
  for (const [key, value] of Object.entries(json)) {
    const field = type.fieldsArray.find((f) => f.jsonName === key)!;
    const target = field.resolvedType;
    const convert = (v: unknown): unknown => (isType(target) && v !== null ? snakeCase(target, v as Json) : v);
    out[field.protoName] = field.map ? Object.fromEntries(Object.entries(value as Json).map(([k, v]) => [k, convert(v)]))
      : field.repeated ? (value as unknown[]).map(convert) : convert(value);
  }
  return out;
}

const post = (url: string, path: string, body: unknown): Promise<Response> => fetch(`${url}${path}`, {
  method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body),
});

/** A server with one method registered per descriptor given; `received` keeps the last request of each. */
async function serve(t: Test, handlers: [Descriptor, (req: any) => unknown][]) {
  const server = new RpcServer({ host: '127.0.0.1', port: 0 });
  const received = new Map<string, unknown>();
  for (const [descriptor, handler] of handlers) {
    server.register(descriptor, (req) => {
      received.set(pathOf(descriptor), req);
      return handler(req);
    });
  }
  const { port } = await server.start();
  t.teardown(() => server.stop());
  const url = `http://127.0.0.1:${port}`;
  return { url, received, last: <T>(d: MethodDescriptor<T, unknown>) => received.get(pathOf(d as Descriptor)) as T };
}

/** POSTs a JSON body that must be refused; resolves with the error body after checking its status and shape. */
async function refused(t: Test, url: string, d: Descriptor, body: unknown): Promise<{ code: string; message: string; details: Record<string, string> }> {
  const res = await post(url, pathOf(d), body);
  t.equal(res.status, 400, `${JSON.stringify(body).slice(0, 80)}: HTTP 400`);
  t.equal(res.headers.get('x-shoal-error-code'), 'ERR_INVALID_ARGUMENT');
  const error = await res.json() as { code: string; message: string; details: Record<string, string> };
  t.strictSame(Object.keys(error), ['code', 'message', 'details'], 'the error keeps its shape');
  return error;
}

t.test('every method of every service: requests in either spelling, answers in proto3 JSON, and the client over JSON', async (t) => {
  t.ok(descriptors.length >= 30, `${descriptors.length} methods`);
  const responses = new Map(descriptors.map((d) => [pathOf(d), d.responseType.fromObject(sample(codec.reflect(d.responseType)))]));
  const { url, last } = await serve(t, descriptors.map((d) => [d, () => responses.get(pathOf(d))]));
  const jsonClient = new ShoalClient({ address: url, encoding: 'json' });
  const protoClient = new ShoalClient({ address: url });
  for (const d of descriptors) {
    const what = `${d.service}/${d.method}`;
    const request = d.requestType.fromObject(sample(codec.reflect(d.requestType)));
    const requestJson = codec.write(d.requestType, request);
    const expected = codec.write(d.responseType, responses.get(pathOf(d)));
    for (const [spelling, body] of [['lowerCamelCase', requestJson], ['snake_case', snakeCase(codec.reflect(d.requestType), requestJson)]] as const) {
      const res = await post(url, pathOf(d), body);
      t.equal(res.status, 200, `${what}, ${spelling}: answered`);
      t.strictSame(view(d.requestType, last(d)), view(d.requestType, request), `${what}, ${spelling}: the handler got every field`);
      const answer = await res.json() as Json;
      t.strictSame(answer, JSON.parse(JSON.stringify(expected)), `${what}, ${spelling}: the answer is the response in proto3 JSON`);
      t.strictSame(view(d.responseType, codec.read(d.responseType, answer)), view(d.responseType, responses.get(pathOf(d))), `${what}: the answer reads back to the same response`);
    }
    const overJson = await jsonClient.call(d, request as object);
    t.strictSame(view(d.requestType, last(d)), view(d.requestType, request), `${what}: ShoalClient over JSON sent every field`);
    t.strictSame(view(d.responseType, overJson), view(d.responseType, await protoClient.call(d, request as object)), `${what}: ShoalClient reads the same response over JSON as over protobuf`);
  }
});

t.test('field names: lowerCamelCase or as in the .proto, never both; an unknown field is named with its message type', async (t) => {
  const { url, last } = await serve(t, [
    [methods.JobsRegister as Descriptor, () => ({ name: 'web' })],
    [methods.JobsGet as Descriptor, () => ({})],
  ]);
  t.equal((await post(url, pathOf(methods.JobsGet as Descriptor), { name: 'web', min_index: 7, stale: true })).status, 200);
  t.strictSame(view(methods.JobsGet.requestType, last(methods.JobsGet)), { name: 'web', minIndex: '7', stale: true }, 'snake_case');
  t.equal((await post(url, pathOf(methods.JobsGet as Descriptor), { name: 'api', minIndex: '8' })).status, 200);
  t.strictSame(view(methods.JobsGet.requestType, last(methods.JobsGet)), { name: 'api', minIndex: '8', stale: false }, 'lowerCamelCase');

  const twice = await refused(t, url, methods.JobsGet as Descriptor, { min_index: 1, minIndex: 1 });
  t.match(twice.message, /^shoal\.v1\.Jobs\/Get: cannot decode the JSON request: minIndex: field min_index of shoal\.v1\.GetJobRequest is given twice, as "min_index" and as "minIndex"$/);
  t.strictSame(twice.details, { field: 'minIndex', type: 'shoal.v1.GetJobRequest' });

  const top = await refused(t, url, methods.JobsGet as Descriptor, { colour: 'red' });
  t.match(top.message, /colour: unknown field "colour" in shoal\.v1\.GetJobRequest \(its fields: name, minIndex, stale\)$/);
  t.match((await refused(t, url, methods.JobsGet as Descriptor, { nmae: 'web' })).message, /nmae: unknown field "nmae" in shoal\.v1\.GetJobRequest \(did you mean "name"\?\)$/);
  const cased = await refused(t, url, methods.JobsGet as Descriptor, { MinIndex: 1 });
  t.match(cased.message, /MinIndex: unknown field "MinIndex" in shoal\.v1\.GetJobRequest \(did you mean "minIndex"\?\)$/);
  const nested = await refused(t, url, methods.JobsRegister as Descriptor, { job_json: '{}', secrets: [{ name: 'a', data: '' }, { name: 'b', dta: 'AA==' }] });
  t.match(nested.message, /secrets\[1\]\.dta: unknown field "dta" in shoal\.v1\.ObjectContents \(did you mean "data"\?\)$/);
  t.strictSame(nested.details, { field: 'secrets[1].dta', type: 'shoal.v1.ObjectContents' });
});

t.test('null is the default value', async (t) => {
  const { url, last } = await serve(t, [[methods.JobsRegister as Descriptor, () => ({})], [methods.MembersList as Descriptor, () => ({})]]);
  const res = await post(url, pathOf(methods.JobsRegister as Descriptor), { jobJson: null, secrets: null, configs: [{ name: null, data: null }] });
  t.equal(res.status, 200);
  t.strictSame(view(methods.JobsRegister.requestType, last(methods.JobsRegister)), { jobJson: '', secrets: [], configs: [{ name: '', data: '' }] });
  const element = await refused(t, url, methods.MembersList as Descriptor, { statuses: ['MEMBER_STATUS_ALIVE', null] });
  t.match(element.message, /statuses\[1\]: null is not an element of a repeated field$/);
});

t.test('bytes: standard or URL-safe base64, with or without padding, in; standard with padding, out', async (t) => {
  const bytes = Buffer.from([0xfb, 0xff, 0xbf, 0xfe]);
  const { url, last } = await serve(t, [
    [methods.ConfigsCreate as Descriptor, () => ({ index: 1 })],
    [methods.AllocationsLogs as Descriptor, () => ({ stdout: bytes, stdoutOffset: 4 })],
  ]);
  const create = methods.ConfigsCreate as Descriptor;
  for (const text of ['+/+//g==', '+/+//g', '-_-__g==', '-_-__g']) {
    const res = await post(url, pathOf(create), { name: 'c', data: text });
    t.equal(res.status, 200, `"${text}" is accepted`);
    t.strictSame(Buffer.from(last(methods.ConfigsCreate).data), bytes, `"${text}" decodes to the same bytes`);
  }
  t.equal((await post(url, pathOf(create), { name: 'c', data: '' })).status, 200, 'empty');
  for (const [text, why] of [
    ['!!', /data: not valid base64 \(standard or URL-safe, padding optional\): "!" at offset 0 is not a base64 character$/],
    ['abcde', /data: not valid base64 .*: 5 characters cannot encode whole bytes$/],
    ['+_AA', /data: not valid base64 .*: it mixes the standard \(\+ \/\) and URL-safe \(- _\) alphabets$/],
    ['AAA==', /data: not valid base64 .*: 2 "=" do not pad 3 characters to a multiple of 4$/],
    ['A=AA', /data: not valid base64 .*: "=" at offset 1 is padding before the end$/],
    [12, /data: expected base64 text, got 12$/],
  ] as const) {
    const error = await refused(t, url, create, { name: 'c', data: text });
    t.match(error.message, why, `${JSON.stringify(text)}: ${error.message}`);
    t.strictSame(error.details, { field: 'data', type: 'shoal.v1.CreateObjectRequest' });
  }
  const logs = await (await post(url, pathOf(methods.AllocationsLogs as Descriptor), { id: 'a' })).json() as Json;
  t.equal(logs['stdout'], '+/+//g==', 'bytes out: standard base64 with padding');
  t.equal(logs['stderr'], '', 'empty bytes out: ""');
});

t.test('integers: a JSON number or a decimal string; fractions and values out of range are errors', async (t) => {
  const { url, last } = await serve(t, [
    [methods.JobsGet as Descriptor, () => ({})],
    [methods.JobsScale as Descriptor, () => ({ evalId: 'e', index: 5, version: shoal.v1.ScaleJobResponse.fromObject({ version: '18446744073709551615' }).version })],
    [methods.JobsStop as Descriptor, () => ({})],
  ]);
  const get = methods.JobsGet as Descriptor;
  for (const [given, read] of [[42, '42'], ['42', '42'], ['18446744073709551615', '18446744073709551615'], ['9007199254740993', '9007199254740993'], ['1e3', '1000'], ['2.50e1', '25'], ['5.0', '5'], ['007', '7'], [0, '0']] as const) {
    t.equal((await post(url, pathOf(get), { minIndex: given })).status, 200, `${JSON.stringify(given)}: accepted`);
    t.equal(String(last(methods.JobsGet).minIndex), read, `${JSON.stringify(given)} is ${read}, every bit kept`);
  }
  for (const [given, why] of [
    [1.5, /minIndex: 1\.5 is not an integer \(uint64\)$/],
    ['0.5', /minIndex: "0\.5" is not an integer \(uint64\)$/],
    ['1e-1', /minIndex: "1e-1" is not an integer/],
    ['-1', /minIndex: "-1" is out of range for uint64 \(0 to 18446744073709551615\)$/],
    ['18446744073709551616', /minIndex: "18446744073709551616" is out of range for uint64/],
    ['1e400', /minIndex: "1e400" is out of range for uint64$/],
    ['abc', /minIndex: "abc" is not a decimal integer \(uint64\)$/],
    [' 1', /minIndex: " 1" is not a decimal integer/],
    [true, /minIndex: expected a uint64 as a JSON number or a decimal string, got true$/],
  ] as const) {
    const error = await refused(t, url, get, { minIndex: given });
    t.match(error.message, why, `${JSON.stringify(given)}: ${error.message}`);
  }
  const scale = methods.JobsScale as Descriptor;
  t.equal((await post(url, pathOf(scale), { name: 'j', service: 's', replicas: '4294967295' })).status, 200);
  t.equal(last(methods.JobsScale).replicas, 4294967295, 'uint32 from a string');
  t.match((await refused(t, url, scale, { replicas: 4294967296 })).message, /replicas: 4294967296 is out of range for uint32 \(0 to 4294967295\)$/);
  t.match((await refused(t, url, scale, { replicas: -1 })).message, /replicas: -1 is out of range for uint32/);

  const answer = await (await post(url, pathOf(scale), {})).json() as Json;
  t.strictSame(answer, { evalId: 'e', index: '5', version: '18446744073709551615' }, 'int64 out: decimal strings, every bit kept');
  t.strictSame(await (await post(url, pathOf(methods.JobsStop as Descriptor), {})).json(), { evalId: '', index: '0' }, 'defaults written');
});

t.test('enums: the name or the number in, the name out', async (t) => {
  const { url, last } = await serve(t, [[methods.MembersList as Descriptor, () => ({
    members: [{ name: 'n1', status: shoal.v1.MemberStatus.MEMBER_STATUS_SUSPECT }, { name: 'n2', status: 9 }, { name: 'n3' }],
  })]]);
  const list = methods.MembersList as Descriptor;
  const res = await post(url, pathOf(list), { statuses: ['MEMBER_STATUS_DEAD', 1, 7] });
  t.equal(res.status, 200);
  t.strictSame(last(methods.MembersList).statuses, [3, 1, 7], 'by name, by number, and an unknown number is kept (proto3 enums are open)');
  const members = ((await res.json()) as { members: Json[] }).members;
  t.strictSame(members.map((m) => m['status']), ['MEMBER_STATUS_SUSPECT', 9, 'MEMBER_STATUS_UNSPECIFIED'], 'names out; a number without a name stays a number');
  t.match((await refused(t, url, list, { statuses: ['MEMBER_STATUS_ZOMBIE'] })).message,
    /statuses\[0\]: "MEMBER_STATUS_ZOMBIE" is not a value of shoal\.v1\.MemberStatus \(MEMBER_STATUS_UNSPECIFIED, MEMBER_STATUS_ALIVE, MEMBER_STATUS_SUSPECT, MEMBER_STATUS_DEAD, MEMBER_STATUS_LEFT; or a number\)$/);
  t.match((await refused(t, url, list, { statuses: [1.5] })).message, /statuses\[0\]: 1\.5 is not an enum number/);
  t.match((await refused(t, url, list, { statuses: 'MEMBER_STATUS_DEAD' })).message, /statuses: expected a JSON array for the repeated field statuses, got "MEMBER_STATUS_DEAD"$/);
});

t.test('nested messages, repeated fields and maps: recursively, with the path in the error', async (t) => {
  const { url, last } = await serve(t, [
    [methods.AllocReportsUpdate as Descriptor, () => ({ index: 3 })],
    [methods.ServicesGet as Descriptor, () => ({ service: { job: 'j', endpoints: [{ allocId: 'a', ports: { 8080: 31000 } }] } })],
    [methods.MembersList as Descriptor, () => shoal.v1.ListMembersResponse.fromObject(JSON.parse('{"members":[{"metadata":{"labels":{"__proto__":"x","zone":"a"}}}]}') as Json)],
  ]);
  const update = methods.AllocReportsUpdate as Descriptor;
  const ok = await post(url, pathOf(update), { node_id: 'n', updates: [{ allocId: 'a', taskPorts: { 8080: 31000, '0': '1' } }, { alloc_id: 'b', task_ports: {} }] });
  t.equal(ok.status, 200);
  t.strictSame(view(methods.AllocReportsUpdate.requestType, last(methods.AllocReportsUpdate)).updates, [
    { allocId: 'a', clientStatus: '', clientMessage: '', restarts: 0, driverHandle: '', taskPorts: { 0: 1, 8080: 31000 }, health: '' },
    { allocId: 'b', clientStatus: '', clientMessage: '', restarts: 0, driverHandle: '', taskPorts: {}, health: '' },
  ]);
  for (const [body, why, field] of [
    [{ updates: [{ taskPorts: {} }, { task_ports: { '80x': 1 } }] }, /updates\[1\]\.task_ports\["80x"\]: map key "80x" is not a uint32 written in decimal$/, 'updates[1].task_ports["80x"]'],
    [{ updates: [{ taskPorts: { 4294967296: 1 } }] }, /updates\[0\]\.taskPorts\["4294967296"\]: map key "4294967296" is out of range for uint32/, 'updates[0].taskPorts["4294967296"]'],
    [{ updates: [{ taskPorts: { 80: 'x' } }] }, /updates\[0\]\.taskPorts\["80"\]: "x" is not a decimal integer \(uint32\)$/, 'updates[0].taskPorts["80"]'],
    [{ updates: [{ taskPorts: { 80: null } }] }, /updates\[0\]\.taskPorts\["80"\]: null is not a map value$/, 'updates[0].taskPorts["80"]'],
    [{ updates: [{ taskPorts: [] }] }, /updates\[0\]\.taskPorts: expected a JSON object for the map task_ports, got an array$/, 'updates[0].taskPorts'],
    [{ updates: [{ taskPorts: { 80: 1, '080': 2 } }] }, /updates\[0\]\.taskPorts\["080"\]: map key "080" is given twice \(as 80\)$/, 'updates[0].taskPorts["080"]'],
    [{ updates: [{}, {}, 'x'] }, /updates\[2\]: expected a JSON object for shoal\.v1\.AllocStatusUpdate, got "x"$/, 'updates[2]'],
    [{ updates: [{ restarts: 1, health: 7 }] }, /updates\[0\]\.health: expected a string, got 7$/, 'updates[0].health'],
  ] as const) {
    const error = await refused(t, url, update, body);
    t.match(error.message, why, error.message);
    t.strictSame(error.details, { field, type: 'shoal.v1.AllocStatusUpdate' });
  }
  const service = await (await post(url, pathOf(methods.ServicesGet as Descriptor), {})).json() as { service: { endpoints: Json[] } };
  t.strictSame(service.service.endpoints[0]!['ports'], { 8080: 31000 }, 'map keys out as strings');

  // A map key "__proto__" is a key like any other, both ways.
  const text = await (await post(url, pathOf(methods.MembersList as Descriptor), {})).text();
  t.match(text, /"labels":\{"__proto__":"x","zone":"a"\}/);
  const labels = (await new ShoalClient({ address: url, encoding: 'json' }).members.list()).members[0]!.metadata!.labels!;
  t.strictSame(Object.entries(labels), [['__proto__', 'x'], ['zone', 'a']]);
  t.equal(Object.getPrototypeOf(labels), Object.prototype);
});

t.test('answers: every field without presence is written, default or not; an unset message is null', async (t) => {
  const { url } = await serve(t, [[methods.JobsGet as Descriptor, () => ({})], [methods.AgentSelf as Descriptor, () => ({ member: { id: 'x' } })]]);
  t.strictSame(await (await post(url, pathOf(methods.JobsGet as Descriptor), {})).json(), { job: null, jobJson: '', allocations: [], evaluations: [], index: '0', portsTaken: [] });
  t.strictSame(await (await post(url, pathOf(methods.AgentSelf as Descriptor), '')).json(), {
    member: { id: 'x', name: '', address: '', status: 'MEMBER_STATUS_UNSPECIFIED', incarnation: '0', metadata: null },
    uptimeMs: '0',
    apiAddress: '',
  }, 'an empty body is an empty request; nested defaults are written too');
});

t.test('the body: a JSON object in UTF-8', async (t) => {
  const { url } = await serve(t, [[methods.JobsGet as Descriptor, () => ({})]]);
  const get = methods.JobsGet as Descriptor;
  t.match((await refused(t, url, get, '[]')).message, /cannot decode the JSON request: the body must be a JSON object$/);
  t.match((await refused(t, url, get, 'null')).message, /the body must be a JSON object$/);
  const latin1 = await fetch(`${url}${pathOf(get)}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: Buffer.from('{"name":"caf\xe9"}', 'latin1') });
  t.equal(latin1.status, 400);
  t.match(await latin1.json(), { message: /the body is not valid UTF-8$/ });
  t.match((await refused(t, url, get, '{"name":"\\ud800"}')).message, /name: the string holds a lone UTF-16 surrogate/);
});

t.test('the client over JSON: skips fields a newer agent sends, and keeps error codes', async (t) => {
  const agent = http.createServer((req, res) => {
    req.resume();
    if (req.url === pathOf(methods.JobsStop as Descriptor)) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ evalId: 'e1', index: '12', addedLater: { x: 1 } }));
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json', 'x-shoal-error-code': 'ERR_NOT_FOUND' });
    res.end(JSON.stringify({ code: 'ERR_NOT_FOUND', message: 'no job named "x"', details: { name: 'x' } }));
  });
  await new Promise<void>((resolve) => agent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => agent.close(() => resolve())));
  const client = new ShoalClient({ address: `127.0.0.1:${(agent.address() as AddressInfo).port}`, encoding: 'json' });
  const stopped = await client.jobs.stop({ name: 'web' });
  t.strictSame(view(methods.JobsStop.responseType, stopped), { evalId: 'e1', index: '12' });
  await t.rejects(client.jobs.get({ name: 'x' }), { code: 'ERR_NOT_FOUND', message: 'no job named "x"', details: { name: 'x' } });
});

/**
 * The parts of the mapping no RPC message uses yet (floats, oneofs, optional fields, 64-bit map keys, well-known
 * types), on types of a .proto written here, so that they are right when a message starts to use them.
 */
t.test('the rest of the mapping, on a .proto of its own', async (t) => {
  const root = protobuf.Root.fromJSON(protobuf.common.get('google/protobuf/timestamp.proto')!);
  protobuf.parse(`
    syntax = "proto3";
    package test.v1;
    import "google/protobuf/timestamp.proto";
    message Other { int32 n = 1; }
    message Rest {
      double d = 1;
      float f = 2;
      oneof choice { string text = 3; Other other = 4; }
      optional uint32 maybe = 5;
      map<int64, string> by_long = 6;
      map<bool, sint32> by_bool = 7;
      sfixed64 signed = 8;
    }
    message Stamped { google.protobuf.Timestamp at = 1; }
  `, root);
  root.resolveAll();
  const json = new ProtoJson(protobuf, root);
  const rest = root.lookupType('test.v1.Rest') as unknown as ProtoType<Json>;
  t.strictSame(json.write(rest, {}), { d: 0, f: 0, byLong: {}, byBool: {}, signed: '0' }, 'a oneof member or optional field not set is not written');
  const read = json.read(rest, { d: 'NaN', f: '-Infinity', other: { n: '-3' }, maybe: 0, by_long: { '-9223372036854775808': 'min' }, byBool: { true: -1 }, signed: '-9223372036854775808' });
  t.strictSame(json.write(rest, read), { d: 'NaN', f: '-Infinity', other: { n: -3 }, maybe: 0, byLong: { '-9223372036854775808': 'min' }, byBool: { true: -1 }, signed: '-9223372036854775808' });
  t.strictSame(json.write(rest, json.read(rest, { d: '1.5e3', f: 0.5 })), { d: 1500, f: 0.5, byLong: {}, byBool: {}, signed: '0' });
  t.throws(() => json.read(rest, { text: 'a', other: {} }), { code: 'ERR_INVALID_ARGUMENT', message: /^other: "text" and "other" are both in oneof choice of test\.v1\.Rest: set at most one$/ });
  t.strictSame(json.write(rest, json.read(rest, { text: null, other: { n: 1 } })).other, { n: 1 }, 'a null oneof member does not count');
  t.throws(() => json.read(rest, { f: 1e39 }), { message: /^f: 1e\+39 is out of range for float$/ });
  t.throws(() => json.read(rest, { d: '1e999' }), { message: /^d: "1e999" is out of range for double$/ });
  t.throws(() => json.read(rest, { d: 'nan' }), { message: /^d: "nan" is not a number \(double\)$/ });
  t.throws(() => json.read(rest, { byBool: { yes: 1 } }), { message: /^byBool\["yes"\]: map key "yes" is not a bool/ });
  t.throws(() => json.read(rest, { signed: '9223372036854775808' }), { message: /out of range for sfixed64/ });
  t.throws(() => json.read(root.lookupType('test.v1.Stamped') as unknown as ProtoType<Json>, {}), { code: 'ERR_INVARIANT', message: /test\.v1\.Stamped\.at is a google\.protobuf\.Timestamp, a well-known type .* src\/rpc\/json\.ts does not write or read yet/ });
});
