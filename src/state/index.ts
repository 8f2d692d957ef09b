export { ClusterState, jobObjectNames, portsOf, takePorts, takenPort, type StateSnapshot } from './cluster-state.js';
export type { Command, ApplyResult, Plan, PlannedAllocation, PlannedStop, AllocUpdate } from './commands.js';
export { isTerminal, holdsResources, isStoreOnly, type NodeRecord, type JobRecord, type Allocation, type Evaluation, type NodeStatus, type ClientStatus, type DesiredStatus, type EvalTrigger, type HealthStatus, type FileObjectKind, type FileObjectRecord, type FileObjectInput } from './types.js';
export { sliceChangedSince, sliceDelta, NodeSlice, type SliceDelta } from './slice.js';
export { catalogEntry, clusterNetworkName, VIP_PREFIX, vipKey, isEndpoint, mayReach, reachableServices, serviceEnvName, serviceKey, targetPortsOf, type CatalogEndpoint, type CatalogNetwork, type CatalogService, type CatalogView, type IngressPort } from './catalog.js';
