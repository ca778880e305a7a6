/**
 * Typed rejections shared by every protocol module.
 *
 * Untrusted input (a block from the network, a payload, a tile) that breaks a rule throws a
 * {@link RuleError} whose `code` names the rule and whose `field` names the offending part, for
 * example `E_POW` on `nonce` or `E_UNKNOWN_DEP` on `depends_on[2]`. The light client and the full
 * node show these codes to users and store them with rejections, so codes are stable API: add new
 * ones, never rename. Misuse of an API by our own code (a wrong argument type) throws the built-in
 * TypeError / RangeError instead, as @noble does.
 *
 * @module
 */

/** Every rule code, with the one-line meaning that docs/protocol.md and the explorer show. */
export const RULES = Object.freeze({
  // Encoding and schema (any DAG-CBOR object: header, meta document, certificate, ...)
  E_DECODE: 'bytes are not a valid DAG-CBOR object',
  E_NONCANONICAL: 'bytes decode, but are not the canonical DAG-CBOR encoding of what they hold',
  E_TOO_LARGE: 'object is larger than the protocol allows',
  E_SCHEMA: 'a field is missing, unknown, or of the wrong type or range',
  E_VERSION: 'unsupported format version',
  // Header rules
  E_CHAIN_ID: 'chain_id is not A, B, C or D',
  E_BLOCK_TYPE: 'block_type is not allowed on this chain',
  E_EXPERT_NAME: 'expert_name does not match block_type and layer_id',
  E_LAYER: 'layer_id is missing, set where it must not be, or outside the architecture',
  E_INDEX: 'index is not the height this block must have',
  E_PREV: 'prev is missing, on another chain, or set where it must be null',
  E_DEPS: 'depends_on is not strictly ascending, or names a block that cannot be a dependency',
  E_UNKNOWN_DEP: 'prev or depends_on names a block that is not known (yet): the block is an orphan',
  E_INVALID_DEP: 'prev or depends_on names a block that was rejected',
  E_META_DEP: 'depends_on must name exactly one chain A block, not older than those of its dependencies',
  E_CYCLE: 'the dependency graph has a cycle',
  E_TIMESTAMP: 'timestamp is before a predecessor',
  E_FUTURE: 'timestamp is too far ahead of the validator\'s clock: retry later',
  E_DIFFICULTY: 'difficulty is not exactly what chain A requires for this chain',
  E_POW: 'the block CID digest does not have `difficulty` leading zero bits',
  E_PUBKEY: 'miner_pub is not a valid compressed secp256k1 public key',
  E_SIG: 'payload_sig is not a valid low-S signature by miner_pub over the signing bytes',
  E_UNAUTHORIZED: 'miner_pub is not allowed to make this block',
  E_SUPERSEDES: 'supersedes is not an earlier version of the same expert named in depends_on',
  E_POL: 'pol is missing where required or set where it must be null',
  E_PAYLOAD: 'payload bytes do not hash to the payload CID, or the CID has the wrong codec',
  E_PAYLOAD_SIZE: 'payload_size does not match the payload',
  // Chain A meta document
  E_META: 'the meta document breaks its schema',
  E_ARCH: 'the architecture is inconsistent',
  E_ARCH_CHANGE: 'a later meta block changes what must stay fixed (architecture, network)',
  E_VALIDATORS: 'the validator set is empty, unsorted, duplicated or holds an invalid key',
  // Chain B
  E_SHAPE: 'a tensor is missing, extra, or its shape or dtype disagrees with the architecture',
  // Chain C
  E_AMOUNT: 'amount is not a positive safe integer',
  E_BALANCE: 'the sender balance would become negative',
  E_REWARD: 'a reward does not match its PoL certificate, or the certificate was already rewarded',
  // PoL certificates
  E_CERT: 'the PoL certificate is malformed or inconsistent with its candidate',
  E_CERT_SIGNER: 'a certificate signature is by a key outside the validator set, or repeated',
  E_CERT_SIG: 'a certificate signature does not verify',
  E_QUORUM: 'certificate signatures do not reach more than 2/3 of the validator set',
  E_POL_THRESHOLD: 'loss_after is not at most loss_before * (1 - delta)',
  // Finality
  E_CHECKPOINT: 'the finality checkpoint is malformed, out of sequence, or names heads that do not extend the last checkpoint',
  E_FINALIZED: 'the block would displace a block a validator checkpoint made final (it is at or below a final height, or off the final branch)',
  // Chain D
  E_DATASET: 'the dataset document breaks its schema',
  E_DECISION: 'the dataset decision breaks its schema, or decides what its dataset\'s lifecycle does not allow',
  E_RECORD: 'the training record is malformed, or does not match its candidate or the candidate\'s job',
  E_POOL: 'the certificate\'s slice is not drawn from the validation pool in force under its rules block',
  // TensorBlocks and payloads
  E_TB_MAGIC: 'TensorBlock does not start with TBLOCK01',
  E_TB_VERSION: 'unsupported TensorBlock version',
  E_TB_DTYPE: 'unknown or unsupported TensorBlock dtype',
  E_TB_SHAPE: 'TensorBlock shape is zero or too large',
  E_TB_LAYOUT: 'unknown TensorBlock layout',
  E_TB_QUANT: 'quantization method does not fit the dtype',
  E_TB_OFFSET: 'TensorBlock offsets overlap, are misaligned or point outside the block',
  E_TB_RESERVED: 'TensorBlock reserved bytes are not zero',
  E_TB_TRUNCATED: 'TensorBlock is shorter than its header says',
  E_NONFINITE: 'a tensor holds NaN or an infinity',
  E_PAYLOAD_MAGIC: 'payload does not start with the BLYNPAY1 index header',
  E_PAYLOAD_INDEX: 'payload index entries overlap, are misaligned, or disagree with their TensorBlocks',
  // Submissions (a block with the IPLD blocks it brings, as a CAR)
  E_CAR: 'the submission CAR is malformed, has a block that does not hash to its CID, or holds blocks the block does not use',
  E_INCOMPLETE: 'a file the block needs (payload, tokenizer, dataset content) is missing blocks, or has the wrong size',
  // Tiles and Merkle paths
  E_TILE: 'tile bytes do not hash to the CID the path names',
  E_MERKLE: 'Merkle path does not lead from the payload CID to the tile',
  // Proof-of-Learning admission (a full node's policy for candidates waiting for validators)
  E_STALE_RULES: 'the candidate depends on a chain A block that is no longer the head: rebuild it on the head and submit again',
  E_STALE_BASE: 'the candidate supersedes a version that is not (or no longer) the current version of its expert',
  E_COPY: 'these weights (the payload CID) were already submitted, by this or another key',
  E_REPLAY: 'this block was already accepted: a candidate is evaluated and rewarded once',
  E_QUOTA: 'the miner key is over its submission or lease quota for its trust level: retry later',
  // Light clients
  E_CID: 'bytes do not hash to the CID they were served under',
  E_ANCHOR: 'chain A does not start at the pinned trust anchor (the genesis CID)'
} as const)

export type RuleCode = keyof typeof RULES

/**
 * A rejection of untrusted input by a named protocol rule.
 *
 * Match on `code` (stable), never on `message` (for humans).
 */
export class RuleError extends Error {
  override readonly name = 'RuleError'
  /** The rule that was broken, for example `E_POW`. */
  readonly code: RuleCode
  /** The offending field or byte range, for example `depends_on[1]` or `nonce`. */
  readonly field: string

  constructor(code: RuleCode, field: string, detail?: string) {
    super(`${code} (${field}): ${detail ?? RULES[code]}`)
    this.code = code
    this.field = field
  }
}

/** Codes that may pass later without any byte changing (an orphan's parent arrives, the clock moves). */
export const TRANSIENT_CODES: readonly RuleCode[] = Object.freeze(['E_UNKNOWN_DEP', 'E_FUTURE'])

/** True for a RuleError with the given code (or any RuleError when code is omitted). */
export function isRuleError(e: unknown, code?: RuleCode): e is RuleError {
  return e instanceof RuleError && (code === undefined || e.code === code)
}

/** Throw a RuleError: a one-liner for guard clauses. */
export function reject(code: RuleCode, field: string, detail?: string): never {
  throw new RuleError(code, field, detail)
}
