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
  /** "type.googleapis.com/shoal.v1.Member" (with the default prefix): how json.ts finds the type's reflection. */
  getTypeUrl(prefix?: string): string;
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

// Control plane (proto/shoal/v1/jobs.proto).
const v1 = shoal.v1;
const d = <Req, Res>(service: string, method: string, req: unknown, res: unknown): MethodDescriptor<Req, Res> => describe(service, method, req as ProtoType<Req>, res as ProtoType<Res>);
export const JobsRegister = d<shoal.v1.RegisterJobRequest, shoal.v1.RegisterJobResponse>('shoal.v1.Jobs', 'Register', v1.RegisterJobRequest, v1.RegisterJobResponse);
export const JobsPlan = d<shoal.v1.PlanJobRequest, shoal.v1.PlanJobResponse>('shoal.v1.Jobs', 'Plan', v1.PlanJobRequest, v1.PlanJobResponse);
export const JobsGet = d<shoal.v1.GetJobRequest, shoal.v1.GetJobResponse>('shoal.v1.Jobs', 'Get', v1.GetJobRequest, v1.GetJobResponse);
export const JobsList = d<shoal.v1.ListJobsRequest, shoal.v1.ListJobsResponse>('shoal.v1.Jobs', 'List', v1.ListJobsRequest, v1.ListJobsResponse);
export const JobsStop = d<shoal.v1.StopJobRequest, shoal.v1.StopJobResponse>('shoal.v1.Jobs', 'Stop', v1.StopJobRequest, v1.StopJobResponse);
export const JobsScale = d<shoal.v1.ScaleJobRequest, shoal.v1.ScaleJobResponse>('shoal.v1.Jobs', 'Scale', v1.ScaleJobRequest, v1.ScaleJobResponse);
export const AllocationsList = d<shoal.v1.ListAllocationsRequest, shoal.v1.ListAllocationsResponse>('shoal.v1.Allocations', 'List', v1.ListAllocationsRequest, v1.ListAllocationsResponse);
export const AllocationsGet = d<shoal.v1.GetAllocationRequest, shoal.v1.GetAllocationResponse>('shoal.v1.Allocations', 'Get', v1.GetAllocationRequest, v1.GetAllocationResponse);
export const AllocationsLogs = d<shoal.v1.AllocationLogsRequest, shoal.v1.AllocationLogsResponse>('shoal.v1.Allocations', 'Logs', v1.AllocationLogsRequest, v1.AllocationLogsResponse);
export const NodesList = d<shoal.v1.ListNodesRequest, shoal.v1.ListNodesResponse>('shoal.v1.Nodes', 'List', v1.ListNodesRequest, v1.ListNodesResponse);
export const NodesDrain = d<shoal.v1.DrainNodeRequest, shoal.v1.DrainNodeResponse>('shoal.v1.Nodes', 'Drain', v1.DrainNodeRequest, v1.DrainNodeResponse);
export const NodesEligibility = d<shoal.v1.NodeEligibilityRequest, shoal.v1.NodeEligibilityResponse>('shoal.v1.Nodes', 'Eligibility', v1.NodeEligibilityRequest, v1.NodeEligibilityResponse);
export const AllocReportsUpdate = d<shoal.v1.AllocReportRequest, shoal.v1.AllocReportResponse>('shoal.v1.AllocReports', 'Update', v1.AllocReportRequest, v1.AllocReportResponse);
export const SlicesWatch = d<shoal.v1.SliceWatchRequest, shoal.v1.SliceWatchResponse>('shoal.v1.Slices', 'Watch', v1.SliceWatchRequest, v1.SliceWatchResponse);
export const ServicesList = d<shoal.v1.ListServicesRequest, shoal.v1.ListServicesResponse>('shoal.v1.Services', 'List', v1.ListServicesRequest, v1.ListServicesResponse);
export const ServicesGet = d<shoal.v1.GetServiceRequest, shoal.v1.GetServiceResponse>('shoal.v1.Services', 'Get', v1.GetServiceRequest, v1.GetServiceResponse);
export const NetworksCreate = d<shoal.v1.CreateNetworkRequest, shoal.v1.CreateNetworkResponse>('shoal.v1.Networks', 'Create', v1.CreateNetworkRequest, v1.CreateNetworkResponse);
export const NetworksList = d<shoal.v1.ListNetworksRequest, shoal.v1.ListNetworksResponse>('shoal.v1.Networks', 'List', v1.ListNetworksRequest, v1.ListNetworksResponse);
export const NetworksDelete = d<shoal.v1.DeleteNetworkRequest, shoal.v1.DeleteNetworkResponse>('shoal.v1.Networks', 'Delete', v1.DeleteNetworkRequest, v1.DeleteNetworkResponse);
export const SecretsCreate = d<shoal.v1.CreateObjectRequest, shoal.v1.CreateObjectResponse>('shoal.v1.Secrets', 'Create', v1.CreateObjectRequest, v1.CreateObjectResponse);
export const SecretsList = d<shoal.v1.ListObjectsRequest, shoal.v1.ListObjectsResponse>('shoal.v1.Secrets', 'List', v1.ListObjectsRequest, v1.ListObjectsResponse);
export const SecretsDelete = d<shoal.v1.DeleteObjectRequest, shoal.v1.DeleteObjectResponse>('shoal.v1.Secrets', 'Delete', v1.DeleteObjectRequest, v1.DeleteObjectResponse);
export const ConfigsCreate = d<shoal.v1.CreateObjectRequest, shoal.v1.CreateObjectResponse>('shoal.v1.Configs', 'Create', v1.CreateObjectRequest, v1.CreateObjectResponse);
export const ConfigsList = d<shoal.v1.ListObjectsRequest, shoal.v1.ListObjectsResponse>('shoal.v1.Configs', 'List', v1.ListObjectsRequest, v1.ListObjectsResponse);
export const ConfigsDelete = d<shoal.v1.DeleteObjectRequest, shoal.v1.DeleteObjectResponse>('shoal.v1.Configs', 'Delete', v1.DeleteObjectRequest, v1.DeleteObjectResponse);
export const ConfigsGet = d<shoal.v1.GetConfigRequest, shoal.v1.GetConfigResponse>('shoal.v1.Configs', 'Get', v1.GetConfigRequest, v1.GetConfigResponse);
export const SlicesDemote = d<shoal.v1.DemoteRequest, shoal.v1.DemoteResponse>('shoal.v1.Slices', 'Demote', v1.DemoteRequest, v1.DemoteResponse);

// Stateful services (proto/shoal/v1/state.proto).
type StateReq = shoal.v1.StateRequest;
export const StateGet = d<StateReq, shoal.v1.StateGetResponse>('shoal.v1.State', 'Get', v1.StateRequest, v1.StateGetResponse);
export const StatePut = d<StateReq, shoal.v1.StateWriteResponse>('shoal.v1.State', 'Put', v1.StateRequest, v1.StateWriteResponse);
export const StateDelete = d<StateReq, shoal.v1.StateWriteResponse>('shoal.v1.State', 'Delete', v1.StateRequest, v1.StateWriteResponse);
export const StateScan = d<shoal.v1.StateScanRequest, shoal.v1.StateScanResponse>('shoal.v1.State', 'Scan', v1.StateScanRequest, v1.StateScanResponse);
export const StateTxn = d<shoal.v1.StateTxnRequest, shoal.v1.StateTxnResponse>('shoal.v1.State', 'Txn', v1.StateTxnRequest, v1.StateTxnResponse);
export const StateEnqueue = d<StateReq, shoal.v1.StateWriteResponse>('shoal.v1.State', 'Enqueue', v1.StateRequest, v1.StateWriteResponse);
export const StateDequeue = d<StateReq, shoal.v1.StateDequeueResponse>('shoal.v1.State', 'Dequeue', v1.StateRequest, v1.StateDequeueResponse);
export const StateAck = d<StateReq, shoal.v1.StateWriteResponse>('shoal.v1.State', 'Ack', v1.StateRequest, v1.StateWriteResponse);
export const PartitionsList = d<shoal.v1.ListPartitionsRequest, shoal.v1.ListPartitionsResponse>('shoal.v1.Partitions', 'List', v1.ListPartitionsRequest, v1.ListPartitionsResponse);
export const PartitionsPlacement = d<shoal.v1.PlacementRequest, shoal.v1.PlacementResponse>('shoal.v1.Partitions', 'Placement', v1.PlacementRequest, v1.PlacementResponse);
export const PartitionsSnapshotChunk = d<shoal.v1.SnapshotChunkRequest, shoal.v1.SnapshotChunkResponse>('shoal.v1.Partitions', 'SnapshotChunk', v1.SnapshotChunkRequest, v1.SnapshotChunkResponse);
export const PartitionsTransfer = d<shoal.v1.TransferPrimaryRequest, shoal.v1.TransferPrimaryResponse>('shoal.v1.Partitions', 'Transfer', v1.TransferPrimaryRequest, v1.TransferPrimaryResponse);
export const PartitionsReplica = d<shoal.v1.ReplicaStatusRequest, shoal.v1.ReplicaStatusResponse>('shoal.v1.Partitions', 'Replica', v1.ReplicaStatusRequest, v1.ReplicaStatusResponse);
