/**
 * Method descriptors: the one place that says which protobuf types a service method takes and returns. The server
 * dispatches on them and the client calls through them, so both sides agree by construction.
 */
import { shoal } from '../gen/proto.js';

/** The static functions protobufjs generates for every message type. */
export interface ProtoType<T> {
  encode(message: T): { finish(): Uint8Array };
  decode(bytes: Uint8Array): T;
  fromObject(object: Record<string, unknown>): T;
  toObject(message: T, options?: Record<string, unknown>): Record<string, unknown>;
}

export interface MethodDescriptor<Req, Res> {
  /** Fully qualified service name, e.g. "shoal.v1.Members". */
  service: string;
  method: string;
  requestType: ProtoType<Req>;
  responseType: ProtoType<Res>;
}

export function methodPath(m: MethodDescriptor<unknown, unknown>): string {
  return `/rpc/${m.service}/${m.method}`;
}

function describe<Req, Res>(service: string, method: string, requestType: ProtoType<Req>, responseType: ProtoType<Res>): MethodDescriptor<Req, Res> {
  return { service, method, requestType, responseType };
}

export const AgentSelf = describe('shoal.v1.Agent', 'Self', shoal.v1.SelfRequest as ProtoType<shoal.v1.SelfRequest>, shoal.v1.SelfResponse as ProtoType<shoal.v1.SelfResponse>);
export const MembersList = describe('shoal.v1.Members', 'List', shoal.v1.ListMembersRequest as ProtoType<shoal.v1.ListMembersRequest>, shoal.v1.ListMembersResponse as ProtoType<shoal.v1.ListMembersResponse>);
export const OperatorRaftBarrier = describe('shoal.v1.Operator', 'RaftBarrier', shoal.v1.RaftBarrierRequest as ProtoType<shoal.v1.RaftBarrierRequest>, shoal.v1.RaftBarrierResponse as ProtoType<shoal.v1.RaftBarrierResponse>);
export const OperatorRaftState = describe('shoal.v1.Operator', 'RaftState', shoal.v1.RaftStateRequest as ProtoType<shoal.v1.RaftStateRequest>, shoal.v1.RaftStateResponse as ProtoType<shoal.v1.RaftStateResponse>);

export const RpcErrorType = shoal.v1.RpcError as ProtoType<shoal.v1.RpcError>;

/** Options for proto3 JSON: enum names, 64-bit numbers as numbers, default values present. */
export const JSON_CONVERSION = { enums: String, longs: Number, defaults: true, arrays: true, objects: true } as const;
