export * from './types.js';
export * from './errors.js';
export * from './keys.js';
export * from './handshake.js';
export { Link, type LinkStream, type LinkState, type LinkCloseKind, type LinkCloseReason, type LinkHandlers, type LinkOptions } from './link.js';
export { HyperswarmTransport, parseBootstrapEntry, type HyperswarmTransportOptions } from './hyperswarm-transport.js';
export { MemoryHub, MemoryTransport } from './memory.js';
