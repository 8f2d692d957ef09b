export { ServiceMesh, LISTENERS_FILE, type ListenerStatus, type PortRange, type ServiceMeshOptions } from './mesh.js';
export { StreamMux, StreamOpenError, type StreamStats, type StreamTarget } from './streams.js';
export { BALANCE_STRATEGIES, orderEndpoints, type BalanceInput, type BalanceStrategy } from './balance.js';
