/**
 * `blyan audit`: replay the training record of a certified version (src/pol/audit.ts) on the chain
 * this process verified from a relay, and say whether the version learned from the data it names.
 *
 * @module
 */
import { CID } from 'multiformats/cid'
import { createRelayClient } from '../src/net/relay-client.ts'
import { auditCertifiedVersion, type AuditResult } from '../src/pol/audit.ts'
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
  if (version === undefined) throw new Error(`${cid} is not a block of the chain verified from ${relayUrl}`)
  let shown = -1
  const result = await auditCertifiedVersion(version, chain.chain, chain.getter('the audited version', signal), {
    ...(signal === undefined ? {} : { signal }),
    onRecord: (record, name) => print(`auditing ${record.expert} ${cid}: ${record.steps} steps on ${name} (${record.dataset}), windows ${record.start}+${record.count}, seed ${record.seed}, trained on ${record.backend}`),
    onStep: (step, steps) => {
      const pct = Math.floor((100 * (step + 1)) / steps)
      if (pct >= shown + 25 || step + 1 === steps) print(`replay [${step + 1}/${steps}] ${(shown = pct)}%`)
    }
  })
  const { record, recordCid, datasetName: _name, ...verdict } = result
  return { ...verdict, version: cid, expert: record.expert, record: recordCid.toString(), dataset: record.dataset.toString() }
}
