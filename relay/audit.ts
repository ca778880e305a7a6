/**
 * `blyan audit`: replay the training record of a certified version (src/pol/audit.ts) on the chain
 * this process verified from a relay, and say whether the version learned from the data it names.
 *
 * @module
 */
import { CID } from 'multiformats/cid'
import { decodeRecord } from '../src/chain/record.ts'
import { createRelayClient } from '../src/net/relay-client.ts'
import { auditRecord, type AuditResult } from '../src/pol/audit.ts'
import { MinerChain } from '../src/pol/chain.ts'

export interface VersionAudit extends AuditResult {
  readonly version: string
  readonly expert: string
  readonly record: string
  readonly dataset: string
}

/** Audit version `cid` (a chain B block with a certificate linking a record). */
export async function auditVersion(relayUrl: string, cid: string, print: (line: string) => void, signal?: AbortSignal): Promise<VersionAudit> {
  let target: CID
  try {
    target = CID.parse(cid)
  } catch {
    throw new Error(`"${cid}" is not a CID`)
  }
  const chain = new MinerChain(createRelayClient(relayUrl))
  await chain.sync(signal)
  const version = chain.chain.get(target)
  if (version === undefined || version.header.chain_id !== 'B') throw new Error(`${cid} is not a chain B block of the chain verified from ${relayUrl}`)
  const recordCid = version.certificate?.value.record ?? null
  if (recordCid === null) throw new Error(`${version.header.expert_name} ${cid} has no training record (${version.certificate === null ? 'an initial version' : 'its certificate links none'}): nothing to audit`)
  const record = decodeRecord(await chain.block(recordCid, 'the training record', signal))
  const model = chain.model()
  const { document } = chain.dataset(record.dataset)
  print(`auditing ${record.expert} ${cid}: ${record.steps} steps on ${document.name} (${record.dataset}), windows ${record.start}+${record.count}, seed ${record.seed}, trained on ${record.backend}`)
  let shown = -1
  const result = await auditRecord({
    record, version, architecture: model.architecture, lookup: (c) => chain.chain.get(c), get: chain.getter('the audited model', signal),
    tokenizer: await chain.tokenizer(model, signal), datasetText: await chain.datasetText(record.dataset, signal),
    ...(signal === undefined ? {} : { signal }),
    onStep: (step, steps) => {
      const pct = Math.floor((100 * (step + 1)) / steps)
      if (pct >= shown + 25 || step + 1 === steps) print(`replay [${step + 1}/${steps}] ${(shown = pct)}%`)
    }
  })
  return { ...result, version: cid, expert: record.expert, record: recordCid.toString(), dataset: record.dataset.toString() }
}
