/**
 * Reading submission CARs off HTTP requests with bounded work: what `POST /api/blocks` may cost.
 *
 * **Limits per block kind, while streaming.** A submission's first block is its header (protocol.md
 * §12), so the node reads the CAR as it arrives, decodes the header from the first few kilobytes,
 * and from then on allows only what a block of that kind can bring: a chain B payload sized from
 * the architecture (the largest payload its tensors can encode to: src/tensor/payload.ts
 * `maxPayloadSize`), a document plus the node's limit for a linked file (a tokenizer, a dataset),
 * plus the largest header and certificate and the CAR's framing. An upload is cut off the moment it
 * passes its limit; a header that does not decode, or a CAR that does not start with one, is
 * refused after its first bytes.
 *
 * **A budget across uploads.** At most `maxConcurrent` uploads at once, `maxPerClient` from one
 * address, and `maxBufferedBytes` held in memory by all of them together (an upload holds its bytes
 * until the node has judged it). Beyond any of these the node answers 503 with Retry-After at
 * once, or cuts the upload that would go over, rather than buffer without bound.
 *
 * @module
 */
import type { IncomingMessage } from 'node:http'
import { CarBlockIterator } from '@ipld/car/iterator'
import { cidMatches } from '../../src/codec/cbor.ts'
import { MAX_DOCUMENT_BYTES, MAX_HEADER_BYTES, decodeHeader, type Header } from '../../src/chain/header.ts'
import type { Architecture } from '../../src/chain/meta.ts'
import { expectedTensors } from '../../src/chain/params.ts'
import { MAX_CERT_BYTES } from '../../src/chain/pol.ts'
import { MAX_SUBMISSION_BYTES } from '../../src/chain/submission.ts'
import { RuleError, isRuleError, reject } from '../../src/errors.ts'
import { maxPayloadSize } from '../../src/tensor/payload.ts'
import { TILE_SIZE } from '../../src/tensor/tiles.ts'

/** Node policy for uploads; every field has a default (DEFAULT_UPLOAD_POLICY). */
export interface UploadPolicy {
  /** Largest linked file a dataset block may bring (its content and record together). */
  readonly maxDatasetBytes: number
  /** Largest tokenizer file a chain A block may bring. */
  readonly maxTokenizerBytes: number
  /** Uploads read at once, from all clients. */
  readonly maxConcurrent: number
  /** Uploads read at once from one client address. */
  readonly maxPerClient: number
  /** Bytes all uploads may hold in memory together, until the node has judged them. */
  readonly maxBufferedBytes: number
  /** Hard cap on one submission, whatever its kind. */
  readonly maxSubmissionBytes: number
}

export const DEFAULT_UPLOAD_POLICY: UploadPolicy = Object.freeze({
  maxDatasetBytes: 32 * 1024 * 1024,
  maxTokenizerBytes: 32 * 1024 * 1024,
  maxConcurrent: 8,
  maxPerClient: 2,
  maxBufferedBytes: 96 * 1024 * 1024,
  maxSubmissionBytes: MAX_SUBMISSION_BYTES
})

/** Bytes read before the header must have arrived: the CAR header and a first block of at most MAX_HEADER_BYTES, with room for a network chunk. */
export const BEFORE_HEADER_BYTES = 256 * 1024

/** What every submission may bring besides its payload and files: the header, a certificate, CAR framing. */
const FIXED_OVERHEAD = MAX_HEADER_BYTES + MAX_CERT_BYTES + 64 * 1024

/** A UnixFS file of `size` bytes as CAR sections: the bytes, plus per 256 KiB leaf a CID, a length and a parent link. */
function fileBytes(size: number): number {
  return size + Math.ceil(size / TILE_SIZE) * 256 + 16 * 1024
}

/**
 * The most a submission of `header` can legitimately bring, under `arch` (the network's
 * architecture, fixed at genesis; null before the node has a chain A).
 */
export function submissionLimit(header: Header, arch: Architecture | null, policy: UploadPolicy): number {
  let most: number
  switch (header.chain_id) {
    case 'B': {
      if (arch === null) return policy.maxSubmissionBytes
      let tensors
      try {
        tensors = expectedTensors(header.expert_name, arch)
      } catch (e) {
        if (!isRuleError(e)) throw e
        return FIXED_OVERHEAD // outside the architecture: the rules refuse it from the header alone
      }
      most = fileBytes(maxPayloadSize(tensors))
      break
    }
    case 'A':
      most = MAX_DOCUMENT_BYTES + fileBytes(policy.maxTokenizerBytes)
      break
    case 'C':
      most = MAX_DOCUMENT_BYTES
      break
    case 'D':
      most = MAX_DOCUMENT_BYTES + fileBytes(policy.maxDatasetBytes)
      break
  }
  return Math.min(policy.maxSubmissionBytes, most + FIXED_OVERHEAD)
}

/** The client went away mid-upload: nothing to answer, nothing to log. */
export class UploadAbortedError extends Error {
  override readonly name = 'UploadAbortedError'
}

/** The node is at its upload budget: answer 503 with Retry-After. */
export class UploadBusyError extends Error {
  override readonly name = 'UploadBusyError'
  readonly retryAfterSeconds: number
  constructor(message: string, retryAfterSeconds = 2) {
    super(message)
    this.retryAfterSeconds = retryAfterSeconds
  }
}

/** One upload's claim on the budget: bytes reserved as they arrive, all returned by `release`. */
export interface UploadTicket {
  /** Reserve `n` more bytes; false when the budget across uploads would be exceeded. */
  reserve(n: number): boolean
  release(): void
}

/** The budget across uploads (concurrency, per client, bytes held). */
export class UploadGate {
  readonly #policy: UploadPolicy
  #active = 0
  #bytes = 0
  readonly #perClient = new Map<string, number>()

  constructor(policy: UploadPolicy = DEFAULT_UPLOAD_POLICY) {
    this.#policy = policy
  }

  /** Bytes all uploads hold now. */
  get bufferedBytes(): number {
    return this.#bytes
  }

  /** A ticket for one upload from `client`, or UploadBusyError when none may start now. */
  enter(client: string): UploadTicket {
    const mine = this.#perClient.get(client) ?? 0
    if (mine >= this.#policy.maxPerClient) throw new UploadBusyError(`${mine} uploads from this address are in progress (at most ${this.#policy.maxPerClient})`)
    if (this.#active >= this.#policy.maxConcurrent) throw new UploadBusyError(`the node is reading ${this.#active} uploads (at most ${this.#policy.maxConcurrent})`)
    this.#active++
    this.#perClient.set(client, mine + 1)
    let held = 0
    let open = true
    return {
      reserve: (n: number): boolean => {
        if (this.#bytes + n > this.#policy.maxBufferedBytes) return false
        this.#bytes += n
        held += n
        return true
      },
      release: (): void => {
        if (!open) return
        open = false
        this.#bytes -= held
        this.#active--
        const left = (this.#perClient.get(client) ?? 1) - 1
        if (left === 0) this.#perClient.delete(client)
        else this.#perClient.set(client, left)
      }
    }
  }
}

/** A submission read off a request: the CAR bytes and its decoded header. */
export interface ReadSubmission {
  readonly car: Uint8Array
  readonly header: Header
  /** The header block's bytes. */
  readonly headerBytes: Uint8Array
}

/**
 * Read a submission CAR from `req`, within `limitFor(header)` bytes once the header is known and
 * BEFORE_HEADER_BYTES until then, each byte reserved on `ticket`. Throws RuleError for a refusal
 * (E_CAR: not a CAR, or the first block is not the root header; E_TOO_LARGE: over its limit; a
 * header rule from decodeHeader), UploadBusyError when the budget across uploads runs out, and
 * UploadAbortedError when the client goes away. Stops reading at the first of these.
 */
export async function readSubmission(req: IncomingMessage, ticket: UploadTicket, limitFor: (header: Header) => number, maxBytes: number): Promise<ReadSubmission> {
  const declared = Number(req.headers['content-length'] ?? NaN)
  if (declared > maxBytes) reject('E_TOO_LARGE', 'car', `body of ${declared} bytes, limit ${maxBytes}`)
  const chunks: Uint8Array[] = []
  let size = 0
  let limit = Math.min(maxBytes, BEFORE_HEADER_BYTES)
  let what = 'before its header'
  const body = async function* (): AsyncGenerator<Uint8Array> {
    try {
      for await (const chunk of req as AsyncIterable<Buffer>) {
        size += chunk.length
        if (size > limit) reject('E_TOO_LARGE', 'car', `over ${limit} bytes ${what}`)
        if (!ticket.reserve(chunk.length)) throw new UploadBusyError('the node holds as many upload bytes as it allows; retry shortly')
        chunks.push(chunk)
        yield chunk
      }
    } catch (e) {
      if (e instanceof RuleError || e instanceof UploadBusyError) throw e
      throw new UploadAbortedError(e instanceof Error ? e.message : String(e))
    }
    if (req.readableAborted || !req.complete) throw new UploadAbortedError('the client closed the upload before its end')
  }
  let header: Header | null = null
  let headerBytes: Uint8Array | null = null
  try {
    const blocks = await CarBlockIterator.fromIterable(body())
    const roots = await blocks.getRoots()
    for await (const { cid, bytes } of blocks) {
      if (header !== null) continue
      if (roots[0] === undefined || !cid.equals(roots[0])) reject('E_CAR', 'blocks[0]', 'the first block must be the header the first root names (protocol.md §12)')
      if (!cidMatches(cid, bytes)) reject('E_CAR', cid.toString(), 'bytes do not hash to the CID')
      header = decodeHeader(bytes)
      headerBytes = bytes
      limit = Math.min(maxBytes, limitFor(header))
      what = `for a chain ${header.chain_id} ${header.block_type} block`
      if (size > limit) reject('E_TOO_LARGE', 'car', `over ${limit} bytes ${what}`)
    }
  } catch (e) {
    if (e instanceof RuleError || e instanceof UploadBusyError || e instanceof UploadAbortedError) throw e
    reject('E_CAR', 'car', e instanceof Error ? e.message : String(e))
  }
  if (header === null || headerBytes === null) reject('E_CAR', 'roots[0]', 'the CAR holds no blocks')
  const car = Buffer.concat(chunks, size)
  return { car: new Uint8Array(car.buffer, car.byteOffset, car.length), header, headerBytes }
}
