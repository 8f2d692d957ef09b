export { NodeCore, type NodeEffect, type NodeStateView, type TaskExit, type TaskPhase, type TaskRecord } from './node-core.js';
