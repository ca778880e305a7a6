/**
 * PoL votes: each validator's verdict on a candidate is a certificate with its one signature (the
 * body holds the losses it measured, src/chain/pol.ts). A body that meets the threshold and gathers
 * signatures from a quorum of the beacon's validators is the certificate; one that does not is a
 * signed refusal. Votes come from this node's keys and, on a peer network, from other validators'
 * nodes over gossip; this collector keeps one vote per validator and candidate (the first: a second
 * body from the same key is ignored) and says where the count stands.
 *
 * @module
 */
import { toHex } from '../../src/codec/cbor.ts'
import { quorumSize, type MetaDocument } from '../../src/chain/meta.ts'
import { certificateBodyBytes, meetsThreshold, type Certificate, type CertificateBody, type CertificateSignature } from '../../src/chain/pol.ts'

/** One validator's vote as counted. */
export interface CountedVote {
  readonly validator: string
  readonly body: CertificateBody
  readonly signature: CertificateSignature
  readonly accept: boolean
}

export interface Tally {
  /** Every vote counted, in arrival order. */
  readonly votes: readonly CountedVote[]
  /** A body meeting the threshold with a quorum of signatures: the certificate to assemble. */
  readonly quorum: { readonly body: CertificateBody; readonly signatures: CertificateSignature[] } | null
  /** Votes that accept (meet the threshold), whatever their bodies. */
  readonly accepting: number
  readonly need: number
  /** True when no body can reach a quorum any more, counting `absent` validators as never voting. */
  readonly impossible: boolean
}

/** Candidates whose votes are kept at most (oldest dropped): gossip from strangers cannot grow it without bound. */
const MAX_CANDIDATES = 1024

export class PolVotes {
  readonly #byCandidate = new Map<string, Map<string, CountedVote>>()

  /** Count a vote (its signatures already checked); returns false when its validator had voted on this candidate. */
  add(vote: Certificate, delta: number): boolean {
    const key = vote.candidate.toString()
    let votes = this.#byCandidate.get(key)
    if (votes === undefined) {
      if (this.#byCandidate.size >= MAX_CANDIDATES) this.#byCandidate.delete(this.#byCandidate.keys().next().value as string)
      votes = new Map()
      this.#byCandidate.set(key, votes)
    }
    let added = false
    for (const signature of vote.signatures) {
      const validator = toHex(signature.validator)
      if (votes.has(validator)) continue
      votes.set(validator, { validator, body: vote, signature, accept: meetsThreshold(vote.loss_before, vote.loss_after, delta) })
      added = true
    }
    return added
  }

  has(candidate: string, validator: string): boolean {
    return this.#byCandidate.get(candidate)?.has(validator) === true
  }

  /**
   * Where the votes on `candidate` stand under `meta` (the beacon's validator set). `final`: no
   * more votes will come (every validator that could vote did, or the deadline passed), so anything
   * short of a quorum is impossible.
   */
  tally(candidate: string, meta: MetaDocument, final: boolean): Tally {
    const votes = [...(this.#byCandidate.get(candidate)?.values() ?? [])]
    const need = quorumSize(meta.validators.length)
    const bodies = new Map<string, { body: CertificateBody; signatures: CertificateSignature[] }>()
    for (const v of votes) {
      if (!v.accept) continue
      const id = toHex(certificateBodyBytes(v.body))
      const entry = bodies.get(id) ?? { body: v.body, signatures: [] }
      entry.signatures.push(v.signature)
      bodies.set(id, entry)
    }
    const best = Math.max(0, ...[...bodies.values()].map((b) => b.signatures.length))
    const quorum = [...bodies.values()].find((b) => b.signatures.length >= need) ?? null
    const remaining = final ? 0 : meta.validators.length - votes.length
    return { votes, quorum, accepting: votes.filter((v) => v.accept).length, need, impossible: quorum === null && best + remaining < need }
  }

  forget(candidate: string): void {
    this.#byCandidate.delete(candidate)
  }
}
