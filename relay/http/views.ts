/**
 * JSON views the relay answers with: node status (`GET /api/status`, the `/ws` hello), finality
 * checkpoints and PoL candidates. Every view a client should verify carries the bytes to verify
 * (header hex, CIDs), never only a JSON view.
 *
 * @module
 */
import { CID } from 'multiformats/cid'
import { CHAIN_IDS } from '../../src/chain/header.ts'
import { toJson, type Json } from '../../src/chain/json.ts'
import { encodeParamIndex, paramIndexDocument } from '../../src/chain/paramindex.ts'
import { isFinal } from '../../src/chain/checkpoint.ts'
import type { ChainStore } from '../node/interface.ts'
import type { FullNode } from '../node/full-node.ts'
import type { CandidateRecord } from '../pol/pol-store.ts'

/** Status: what a client needs to start syncing and to check it talks to the network it trusts. */
export function statusJson(node: FullNode, version: string): { [key: string]: Json } {
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
    blocks: store.size
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
