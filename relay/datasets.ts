/**
 * `blyan dataset`: propose a dataset to a relay, list what the network holds, and (with validator
 * keys) approve, reject or retire one. Every block is built on chain heads this process verified
 * itself (the miner's header sync, src/pol/chain.ts), never on a relay's word.
 *
 * @module
 */
import { isValidator, quorumSize, type MetaDocument } from '../src/chain/meta.ts'
import type { AcceptedBlock } from '../src/chain/view.ts'
import { CID } from 'multiformats/cid'
import { assembleDecision, encodeDecision, signDecision, type Tier, type Verdict } from '../src/chain/decision.ts'
import { publicKeyOf, type SecretKey } from '../src/chain/keys.ts'
import { createRelayClient, type RelayClient } from '../src/net/relay-client.ts'
import type { DatasetInfo } from '../src/net/relay-api.ts'
import { MinerChain } from '../src/pol/chain.ts'
import { decodeReport } from '../src/pol/gate.ts'
import { DAG_CBOR, cidOf } from '../src/codec/cbor.ts'
import { proposalSubmission, type ProposalRequest } from '../src/chain/proposal.ts'
import { decisionBody, decisionSubmission } from './node/governance.ts'

/** How long `propose` waits for the node's gate before it stops watching. */
const SCREEN_WAIT_MS = 120_000

async function verifiedChain(relay: RelayClient, signal?: AbortSignal): Promise<MinerChain> {
  const chain = new MinerChain(relay)
  await chain.sync(signal)
  return chain
}

/** Propose `request` through the relay; then follow the node's screening until a stage other than `proposed` (or the wait ends). */
export async function proposeDataset(relayUrl: string, key: SecretKey, request: ProposalRequest, print: (line: string) => void, signal?: AbortSignal): Promise<DatasetInfo | null> {
  const relay = createRelayClient(relayUrl)
  const chain = await verifiedChain(relay, signal)
  print(`hashing ${request.content.length} bytes into tiles and sealing the proposal`)
  const { cid, car } = await proposalSubmission(chain.chain, key, request, Date.now())
  await relay.submit(car, signal)
  print(`proposed ${request.name} (${request.split}): ${cid}`)
  const deadline = Date.now() + SCREEN_WAIT_MS
  for (;;) {
    const info = (await relay.datasets(signal)).find((d) => d.cid === cid.toString()) ?? null
    if (info !== null && info.stage !== 'proposed') return info
    if (Date.now() > deadline) {
      print(`still waiting for the validators' quality gate after ${SCREEN_WAIT_MS / 1000} s; see blyan dataset list --relay ${relay.url}`)
      return info
    }
    await new Promise((resolve) => setTimeout(resolve, 500))
  }
}

export interface DecideRequest {
  readonly dataset: string
  readonly verdict: Verdict
  readonly tier?: Tier
  readonly reasons?: readonly string[]
}

/**
 * A decision signed by `keys` (a quorum of the network's validators), linking the gate report the
 * relay holds on the dataset when it is one (its CID and its `dataset` field checked).
 */
export async function decideDataset(relayUrl: string, keys: readonly SecretKey[], request: DecideRequest, print: (line: string) => void, signal?: AbortSignal): Promise<string> {
  let dataset: CID
  try {
    dataset = CID.parse(request.dataset)
  } catch {
    throw new Error(`"${request.dataset}" is not a CID`)
  }
  const relay = createRelayClient(relayUrl)
  const chain = await verifiedChain(relay, signal)
  const bytes = await relay.datasetReport(dataset.toString(), signal)
  let report: Uint8Array | undefined
  if (bytes !== null) {
    const r = decodeReport(bytes)
    if (!r.dataset.equals(dataset)) throw new Error(`the relay's report on ${dataset} is about ${r.dataset}`)
    report = bytes
    print(`the gate's report ${cidOf(bytes, DAG_CBOR)}: ${r.pass ? 'passed' : `failed ${r.checks.filter((c) => !c.pass).map((c) => c.name).join(', ')}`}`)
  } else {
    print('no gate report on it at this relay: the decision links none')
  }
  const decision = {
    dataset, verdict: request.verdict, ...(request.tier === undefined ? {} : { tier: request.tier }),
    ...(request.reasons === undefined ? {} : { reasons: request.reasons }), ...(report === undefined ? {} : { report })
  }
  const meta = (chain.chain.head('A') as AcceptedBlock).document as MetaDocument
  const signers = keys.filter((k) => isValidator(meta, publicKeyOf(k)))
  if (signers.length > 0 && signers.length < quorumSize(meta.validators.length)) {
    // Validators on their own nodes: this key votes; the network seals the decision at a quorum of the same vote.
    const body = decisionBody(chain.chain, decision)
    const status = await relay.submitDecisionVote(encodeDecision(assembleDecision(body, signers.map((k) => signDecision(body, k)))), signal)
    print(`voted to ${request.verdict} ${dataset} (${signers.length} of the ${quorumSize(meta.validators.length)} signatures a decision needs; ${status} at ${relay.url}): the decision is sealed when a quorum of validators voted the same`)
    return ''
  }
  const car = await decisionSubmission(chain.chain, keys, decision, Date.now())
  const result = await relay.submit(car, signal)
  const cid = 'accepted' in result ? result.accepted.cid : ''
  print(`${request.verdict} ${dataset}: decision ${cid}; it comes into force with the next chain A block (a node with validator keys makes it at once)`)
  return cid
}

/** What the relay reports of its chain D datasets (unverified: a report). */
export function listDatasets(relayUrl: string, signal?: AbortSignal): Promise<DatasetInfo[]> {
  return createRelayClient(relayUrl).datasets(signal)
}

/** One line per dataset, newest first. */
export function datasetLines(list: readonly DatasetInfo[]): string[] {
  return [...list].sort((a, b) => b.index - a.index).map((d) => {
    const failed = d.report?.checks.filter((c) => !c.pass).map((c) => c.name) ?? []
    const gate = d.report === null ? 'not screened' : d.report.pass ? 'gate passed' : `gate failed: ${failed.join(', ')}`
    const use = d.learnedBy.length === 0 ? '' : `  ${d.learnedBy.length} version${d.learnedBy.length === 1 ? '' : 's'} learned from it, ${d.earned} earned`
    return `D:${d.index} ${d.cid}  ${d.name} (${d.split}, ${d.size} bytes, ${d.license})  ${d.stage}${d.tier === null ? '' : ` ${d.tier}`}${d.inForce ? ', in force' : ''}  ${gate}${use}${d.reasons.length > 0 ? `  [${d.reasons.join('; ')}]` : ''}`
  })
}
