export { RpcServer, isLoopback, type CallContext, type Handler, type RpcServerOptions } from './server.js';
export { ShoalClient, parseApiAddress, DEFAULT_API_ADDRESS, type ShoalClientOptions, type CallOptions } from './client.js';
export { loadProtoJson, ProtoJson, PROTO_DIR, type JsonReadOptions } from './json.js';
export { RemoteError, AgentUnreachableError, DeadlineExceededError, httpStatusFor } from './errors.js';
export {
  AgentSelf, MembersList, OperatorRaftState, OperatorRaftBarrier, JobsRegister, JobsPlan, JobsGet, JobsList, JobsStop, JobsScale,
  AllocationsList, AllocationsGet, AllocationsLogs, NodesList, NodesDrain, NodesEligibility, AllocReportsUpdate, SlicesWatch, SlicesDemote, ServicesList, ServicesGet, NetworksCreate, NetworksList, NetworksDelete, SecretsCreate, SecretsList, SecretsDelete, ConfigsCreate, ConfigsList, ConfigsDelete, ConfigsGet,
  StateGet, StatePut, StateDelete, StateScan, StateTxn, StateEnqueue, StateDequeue, StateAck, PartitionsList, PartitionsPlacement, PartitionsReplica, PartitionsSnapshotChunk, PartitionsTransfer, methodPath, type MethodDescriptor, type ProtoType } from './methods.js';
