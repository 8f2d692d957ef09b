// Local declarations for hyperswarm 4.17 and hyperdht 6.32, which publish no types. Only what src/transport uses
// is declared, so a use of anything else fails to compile and gets looked at (and declared) on purpose.

declare module 'hyperdht' {
  import type { EventEmitter } from 'node:events';
  import type { NoiseSecretStream } from '@hyperswarm/secret-stream';

  export interface KeyPair {
    publicKey: Buffer;
    secretKey: Buffer;
  }

  export interface DHTOptions {
    /** Explicit `host:port` list. Never leave undefined/null/false: hyperdht would then use the public DHT. */
    bootstrap?: string[];
    nodes?: Array<{ host: string; port: number }>;
    port?: number;
    host?: string;
    ephemeral?: boolean;
    firewalled?: boolean;
    keyPair?: KeyPair;
    connectionKeepAlive?: number | false;
    /** false: fail when the requested port is taken instead of silently binding another one. */
    anyPort?: boolean;
  }

  export interface DHTServer extends EventEmitter {
    listen(keyPair?: KeyPair): Promise<void>;
    close(): Promise<void>;
  }

  export default class DHT extends EventEmitter {
    constructor(options?: DHTOptions);
    static keyPair(seed?: Uint8Array): KeyPair;
    static bootstrapper(port: number, host: string, options?: DHTOptions): DHT;
    readonly destroyed: boolean;
    readonly defaultKeyPair: KeyPair;
    ready(): Promise<void>;
    address(): { host: string; port: number };
    connect(remotePublicKey: Uint8Array, options?: { keyPair?: KeyPair }): NoiseSecretStream;
    createServer(options?: { firewall?: (remotePublicKey: Buffer) => boolean }, onconnection?: (conn: NoiseSecretStream) => void): DHTServer;
    destroy(options?: { force?: boolean }): Promise<void>;
  }
}

declare module '@hyperswarm/secret-stream' {
  import type { Duplex } from 'node:stream';

  /** A Noise-encrypted duplex (a streamx Duplex; the Node Duplex type is close enough for what we call). */
  export interface NoiseSecretStream extends Duplex {
    readonly isInitiator: boolean;
    readonly publicKey: Buffer;
    readonly remotePublicKey: Buffer;
    /** Hash of the completed Noise handshake: the same on both ends, different on every connection. */
    readonly handshakeHash: Buffer | null;
    readonly rawStream: { remoteHost?: string; remotePort?: number } | null;
    setKeepAlive(ms: number): void;
    setTimeout(ms: number): void;
  }
}

declare module 'hyperswarm' {
  import type { EventEmitter } from 'node:events';
  import type DHT from 'hyperdht';
  import type { KeyPair } from 'hyperdht';
  import type { NoiseSecretStream } from '@hyperswarm/secret-stream';

  export interface PeerInfo {
    publicKey: Buffer;
    /** Failed attempts so far; hyperswarm stops redialing an explicit peer after a few. */
    attempts: number;
    banned: boolean;
    explicit: boolean;
    ban(value: boolean): void;
  }

  export interface PeerDiscovery {
    flushed(): Promise<void>;
    refresh(options?: { client?: boolean; server?: boolean }): Promise<void>;
    destroy(): Promise<void>;
  }

  export interface SwarmOptions {
    dht?: DHT;
    keyPair?: KeyPair;
    maxPeers?: number;
    firewall?: (remotePublicKey: Buffer) => boolean;
  }

  export default class Hyperswarm extends EventEmitter {
    constructor(options?: SwarmOptions);
    readonly dht: DHT;
    readonly keyPair: KeyPair;
    readonly connections: Set<NoiseSecretStream>;
    readonly peers: Map<string, PeerInfo>;
    readonly destroyed: boolean;
    join(topic: Uint8Array, options?: { client?: boolean; server?: boolean }): PeerDiscovery;
    leave(topic: Uint8Array): Promise<void>;
    joinPeer(publicKey: Uint8Array): void;
    leavePeer(publicKey: Uint8Array): void;
    listen(): Promise<void>;
    flush(): Promise<boolean>;
    destroy(options?: { force?: boolean }): Promise<void>;
    on(event: 'connection', listener: (conn: NoiseSecretStream, info: PeerInfo) => void): this;
    on(event: string, listener: (...args: unknown[]) => void): this;
  }
}
