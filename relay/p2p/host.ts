/**
 * The libp2p host of a full node: TCP + Noise + Yamux, identify and ping, and gossipsub tuned for
 * networks of 3 to 10 nodes. No public bootstrap list, no DHT, no relaying through strangers: a
 * node dials exactly the peers its operator names (network.ts keeps redialling them).
 *
 * Gossip is unsigned (StrictNoSign: every Blyan message carries its own signatures, and an unsigned
 * envelope does not tie a message to the libp2p key that first sent it), with content message ids
 * (SHA-256 of the data), so the same block published by two nodes is one message.
 *
 * Node 20 lacks `Promise.withResolvers`, which libp2p's streams call: the polyfill is installed
 * before libp2p is loaded (it is imported lazily, here).
 *
 * @module
 */
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { sha256 } from '@noble/hashes/sha2.js'
import type { GossipSub } from '@libp2p/gossipsub'
import type { Identify } from '@libp2p/identify'
import type { Libp2p, PeerId, PrivateKey } from '@libp2p/interface'
import type { Ping } from '@libp2p/ping'
import { polyfillWithResolvers } from '../../src/net/helia.ts'

export type PeerHost = Libp2p<{ identify: Identify; ping: Ping; pubsub: GossipSub }>

/** Where a node keeps its libp2p identity inside its data directory (its peer id is stable across restarts). */
export const PEER_KEY_FILE = 'peer.key'

export interface PeerHostOptions {
  readonly privateKey: PrivateKey
  /** Multiaddrs to listen on (default `/ip4/127.0.0.1/tcp/0`). */
  readonly listen?: readonly string[]
  /** Peers refused at the door (network.ts bans a peer that broke a rule). */
  readonly isBanned?: (peer: PeerId) => boolean
  /** Extra score from the application (network.ts: minus its strikes), added to gossipsub's own. */
  readonly appScore?: (peer: string) => number
  /** Allow many dials per second from loopback addresses (local devnets and tests put every node on one host). */
  readonly allowLoopback?: boolean
}

/** The node's libp2p key from `path` (Ed25519, protobuf), made and saved (mode 600) on first use. */
export async function loadPeerKey(path: string): Promise<PrivateKey> {
  const { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } = await import('@libp2p/crypto/keys')
  if (existsSync(path)) return privateKeyFromProtobuf(readFileSync(path))
  const key = await generateKeyPair('Ed25519')
  writeFileSync(path, privateKeyToProtobuf(key), { mode: 0o600 })
  chmodSync(path, 0o600)
  return key
}

/** A started libp2p host. */
export async function createPeerHost(options: PeerHostOptions): Promise<PeerHost> {
  polyfillWithResolvers()
  const [{ createLibp2p }, { tcp }, { noise }, { yamux }, { identify }, { ping }, { gossipsub }] = await Promise.all([
    import('libp2p'), import('@libp2p/tcp'), import('@libp2p/noise'), import('@libp2p/yamux'), import('@libp2p/identify'), import('@libp2p/ping'), import('@libp2p/gossipsub')
  ])
  const isBanned = options.isBanned ?? (() => false)
  return createLibp2p({
    privateKey: options.privateKey,
    addresses: { listen: [...(options.listen ?? ['/ip4/127.0.0.1/tcp/0'])] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: {
      denyDialPeer: (peer) => isBanned(peer),
      denyInboundEncryptedConnection: (peer) => isBanned(peer),
      denyOutboundEncryptedConnection: (peer) => isBanned(peer)
    },
    connectionManager: {
      maxConnections: 64,
      // Every node of a local devnet dials from 127.0.0.1: the default 5 dials/s per host would drop some.
      ...(options.allowLoopback === false ? {} : { allow: ['/ip4/127.0.0.0/ipcidr/8', '/ip6/::1/ipcidr/128'] })
    },
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: gossipsub({
        globalSignaturePolicy: 'StrictNoSign',
        msgIdFn: (message) => sha256(message.data),
        fastMsgIdFn: (rpc) => Buffer.from(sha256(rpc.data ?? new Uint8Array())).toString('base64'),
        allowPublishToZeroTopicPeers: true,
        ignoreDuplicatePublishError: true,
        emitSelf: false,
        // Small meshes (NOTES-stack): with the default Dlo of 4 a 3-5 node network stays under the low mark.
        D: 4,
        Dlo: 2,
        Dhi: 8,
        Dout: 1,
        Dlazy: 4,
        heartbeatInterval: 500,
        // A message is a duplicate for 30 s: long enough for a small mesh, short enough that a PoL
        // candidate nobody has judged yet can be announced again (relay/pol/service.ts).
        seenTTL: 30_000,
        maxInboundDataLength: 64 * 1024 + 1024,
        scoreParams: {
          appSpecificScore: options.appScore ?? (() => 0),
          appSpecificWeight: 1
        },
        scoreThresholds: { gossipThreshold: -100, publishThreshold: -200, graylistThreshold: -300, acceptPXThreshold: 100, opportunisticGraftThreshold: 5 }
      })
    }
  }) as Promise<PeerHost>
}
