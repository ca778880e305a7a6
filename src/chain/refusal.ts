/**
 * What a refusal condemns: the block, or only the submission that carried it.
 *
 * A block is its header bytes and what the header commits to by CID (its payload, a reward's
 * certificate, the files its document links). A submission wraps a block with other bytes: the CAR
 * around it, a chain B version's certificate (which the header cannot name), and it is judged by a
 * node's admission policy. Anyone can wrap someone else's valid header badly (an extra block in the
 * CAR, a forged certificate, a copy submitted first), so a refusal marks the header's CID as
 * rejected, and makes its children invalid, only when the header itself is to blame. Everything
 * else is logged against the submission and leaves the block submittable.
 *
 * @module
 */
import { TRANSIENT_CODES, type RuleCode, type RuleError } from '../errors.ts'
import type { Header } from './header.ts'

/** `block`: these header bytes can never be accepted. `submission`: this submission was refused; the right bytes around the same header may be. */
export type RefusalScope = 'block' | 'submission'

/** The CAR or its completeness: the wrapper, not the header (E_TOO_LARGE only when said of the CAR, not of the header's own bytes). */
const PACKAGING: readonly RuleCode[] = ['E_CAR', 'E_INCOMPLETE']
/** A node's admission policy for PoL candidates: said of this submission to this node, not of the block's validity. */
const POLICY: readonly RuleCode[] = ['E_STALE_RULES', 'E_STALE_BASE', 'E_COPY', 'E_QUOTA', 'E_REPLAY']

/**
 * Whom a refusal blames. `header` is the decoded header of the submission, null when it did not
 * decode (then there is no block to blame, and the refusal names no CID anyway).
 */
export function refusalScope(e: RuleError, header: Header | null): RefusalScope {
  if (header === null || PACKAGING.includes(e.code) || POLICY.includes(e.code) || TRANSIENT_CODES.includes(e.code)) return 'submission'
  if (e.code === 'E_TOO_LARGE' && e.field === 'car') return 'submission'
  // A new chain B version cannot name its certificate: a bad one blames whoever attached it.
  if (header.chain_id === 'B' && header.supersedes !== null && e.field.startsWith('certificate')) return 'submission'
  // A reward names its certificate in `pol`: missing or other bytes in the CAR are the wrapper's fault.
  if (header.chain_id === 'C' && e.code === 'E_POL' && (e.field === 'certificate' || e.field === 'pol')) return 'submission'
  return 'block'
}

/**
 * Whether submitting again can succeed: the same bytes later (an orphan's parent arrives, the clock
 * moves, the key's quota frees up), or the same header in a right submission.
 */
export function canResubmit(e: RuleError, header: Header | null): boolean {
  if (TRANSIENT_CODES.includes(e.code) || e.code === 'E_QUOTA') return true
  return refusalScope(e, header) === 'submission' && !POLICY.includes(e.code) && header !== null
}
