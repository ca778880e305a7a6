/**
 * JSON views the relay answers with: node status (`GET /api/status`, the `/ws` hello), finality
 * checkpoints and PoL candidates. Every view a client should verify carries the bytes to verify
 * (header hex, CIDs), never only a JSON view.
 *
 * @module
 */
import type { NetworkView } from '../p2p/network.ts'
import { CID } from 'multiformats/cid'
import { CHAIN_IDS } from '../../src/chain/header.ts'
import { toJson, type Json } from '../../src/chain/json.ts'
import { encodeParamIndex, paramIndexDocument } from '../../src/chain/paramindex.ts'
import { isFinal } from '../../src/chain/checkpoint.ts'
import type { ChainStore } from '../node/interface.ts'
import type { FullNode } from '../node/full-node.ts'
import type { CandidateRecord } from '../pol/pol-store.ts'
import type { DatasetScreener } from '../pol/screener.ts'
import type { DatasetDocument } from '../../src/chain/dataset.ts'
import type { Decision } from '../../src/chain/decision.ts'
import type { RewardDocument } from '../../src/chain/ledger.ts'
import { datasetStates, poolsInForce, type DatasetState } from '../../src/chain/governance.ts'
import type { AcceptedBlock } from '../../src/chain/view.ts'
import { toHex } from '../../src/codec/cbor.ts'
import { decodeReport } from '../../src/pol/gate.ts'

/** Status: what a client needs to start syncing and to check it talks to the network it trusts. */
export function statusJson(node: FullNode, version: string, network?: NetworkView): { [key: string]: Json } {
  const store = node.store
  const heads: { [key: string]: Json } = {}
  for (const chain of CHAIN_IDS) {
    const head = store.head(chain)
    heads[chain] = head === undefined ? null : { height: head.header.index, cid: head.cid.toString() }
  }
  const index = store.paramIndex()
  const doc = paramIndexDocument(index)
  const meta = store.head('A')
  return {
    version,
    genesis: store.genesis()?.cid.toString() ?? null,
    network: meta === undefined ? null : toJson((meta.document as { network: string }).network),
    heads,
    finality: finalityJson(node),
    paramIndex: { cid: encodeParamIndex(doc).cid.toString(), entries: toJson(doc.entries) },
    blocks: store.size,
    p2p: network === undefined ? null : peersJson(network),
    relays: network === undefined ? [] : network.relays()
  }
}

/** The node's peer network as status shows it: its id and listen multiaddrs, and each peer. */
function peersJson(network: NetworkView): Json {
  return {
    peerId: network.peerId,
    listen: network.multiaddrs(),
    peers: network.peers().map((p) => ({
      id: p.id, addrs: [...p.addrs], latencyMs: p.latencyMs, score: Number.isFinite(p.score) ? p.score : null, strikes: p.strikes, validator: p.validator,
      checkpoint: p.checkpoint, seenAt: p.seenAt, relays: [...p.relays],
      heads: p.heads === null ? null : Object.fromEntries(Object.entries(p.heads).map(([c, h]) => [c, { height: h.index, cid: h.cid.toString() }]))
    }))
  }
}

/** The newest checkpoint, as status shows it: its number and id, and the final head of each linear chain. */
function finalityJson(node: FullNode): Json {
  const checkpoint = node.store.checkpoint()
  if (checkpoint === null) return null
  const [row] = node.store.checkpoints(checkpoint.number, 1)
  const heads: { [key: string]: Json } = {}
  for (const chain of ['A', 'C', 'D'] as const) {
    const cid = checkpoint.heads[chain]
    const block = cid === null ? undefined : node.store.get(cid)
    heads[chain] = block === undefined ? null : { height: block.header.index, cid: block.cid.toString() }
  }
  return { number: checkpoint.number, id: row?.id ?? null, heads }
}

/** A checkpoint as the API lists it: the bytes to verify, with its number and id. */
export function checkpointJson(row: { number: number; id: string; bytes: Uint8Array }): { [key: string]: Json } {
  return { number: row.number, id: row.id, hex: Buffer.from(row.bytes).toString('hex') }
}

/** A PoL candidate as the API shows it; `reward_final` says whether its reward is under a checkpoint yet. */
export function candidateJson(c: CandidateRecord, store: ChainStore): { [key: string]: Json } {
  const reward = c.reward === null ? undefined : store.get(CID.parse(c.reward))
  return {
    reward_final: reward === undefined ? null : isFinal(store, reward, store.checkpoint()),
    cid: c.cid, status: c.status, expert: c.expert, base: c.base, miner: c.miner, rules: c.rules, payload: c.payload,
    received_at: c.receivedAt, code: c.code, message: c.message, beacon: c.beacon, certificate: c.certificate,
    reward: c.reward, amount: c.amount, loss_before: c.lossBefore, loss_after: c.lossAfter, decided_at: c.decidedAt,
    attempts: c.attempts, last_error: c.lastError
  }
}

/**
 * `GET /api/datasets`: each dataset proposed on the chain D head's branch with its document, its
 * stage and tier (governance.ts), whether it is a pool in force under the chain A head, and the
 * quality gate's report: the one its decision links, else the node's own (a screened proposal).
 */
export function datasetsJson(store: ChainStore, screener: DatasetScreener | undefined): { [key: string]: Json } {
  const head = store.head('A')
  const inForce = head === undefined ? { validation: [], train: [] } : poolsInForce(store, head)
  const states = datasetStates(store, store.head('D') ?? null)
  // What each pool earned its proposer, and which versions learned from it: the rewards on the chain C head's branch.
  const earned = new Map<string, number>()
  const learned = new Map<string, { expert: string; version: string }[]>()
  for (let b = store.head('C'); b !== undefined; b = b.header.prev === null ? undefined : store.get(b.header.prev)) {
    const pool = b.certificate?.value.trained_on
    if (b.header.block_type !== 'reward' || pool === null || pool === undefined) continue
    const key = pool.toString()
    earned.set(key, (earned.get(key) ?? 0) + ((b.document as RewardDocument).data?.amount ?? 0))
    const version = store.get(b.certificate?.value.candidate as CID)
    learned.set(key, [...(learned.get(key) ?? []), { expert: version?.header.expert_name ?? '', version: String(version?.cid) }])
  }
  const datasets = [...states.values()].map((s) => {
    const block = store.get(s.dataset) as AcceptedBlock
    const doc = block.document as DatasetDocument
    const linked = linkedReport(store, s)
    const bytes = reportBytes(store, screener, s)
    const report = bytes === null ? null : decodeReport(bytes)
    return {
      cid: s.dataset.toString(), index: block.header.index, name: doc.name, license: doc.license, split: doc.split,
      size: doc.content_size, content: doc.content.toString(), description: doc.description, proposer: toHex(block.header.miner_pub),
      proposed_at: block.header.timestamp, stage: report !== null && s.stage === 'proposed' ? 'screened' : s.stage, tier: s.tier,
      decision: s.decision?.toString() ?? null, reasons: [...s.reasons],
      in_force: [...inForce.validation, ...inForce.train].some((c) => c.equals(s.dataset)),
      earned: earned.get(s.dataset.toString()) ?? 0,
      learned_by: learned.get(s.dataset.toString()) ?? [],
      report_cid: linked?.toString() ?? null,
      report: report === null ? null : { pass: report.pass, checks: report.checks.map((c) => ({ name: c.name, value: c.value, limit: c.limit, pass: c.pass, detail: c.detail })) }
    }
  })
  return toJson({ rules: head?.cid.toString() ?? null, datasets }) as { [key: string]: Json }
}

/** The gate report on a dataset: the one its decision links, else the screener's (null: none, or not a dataset CID). */
export function datasetReport(store: ChainStore, screener: DatasetScreener | undefined, cid: string): Uint8Array | null {
  const state = datasetStates(store, store.head('D') ?? null).get(cid)
  return state === undefined ? null : reportBytes(store, screener, state)
}

/** The report a dataset's decision links, or null (no decision, or one without a report). */
function linkedReport(store: ChainStore, s: DatasetState): CID | null {
  const decision = s.decision === null ? undefined : store.get(s.decision)
  return (decision?.document as Decision | undefined)?.report ?? null
}

function reportBytes(store: ChainStore, screener: DatasetScreener | undefined, s: DatasetState): Uint8Array | null {
  const linked = linkedReport(store, s)
  if (linked !== null) return store.getRaw(linked) ?? null
  return screener?.report(s.dataset)?.bytes ?? null
}
