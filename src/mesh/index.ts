export { ServiceMesh, LISTENERS_FILE, type ContainerAttachment, type ListenerStatus, type LocalTask, type PortRange, type ServiceMeshOptions } from './mesh.js';
export { ContainerBridges, DEFAULT_BRIDGE_POOL, checkBridgePool, type BridgeEngine } from './bridges.js';
export { StreamMux, StreamOpenError, type StreamStats, type StreamTarget } from './streams.js';
export { BALANCE_STRATEGIES, orderEndpoints, type BalanceInput, type BalanceStrategy } from './balance.js';
