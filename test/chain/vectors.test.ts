/**
 * The published vectors (test/vectors/protocol.json) against code nobody here wrote:
 * CIDs recompute with multiformats alone, signing bytes with @ipld/dag-cbor alone, signatures verify
 * with the `openssl` command line, tile CIDs with a plain sha256 over 256 KiB slices. And the
 * vectors are what the current code produces (a change to any encoding must regenerate them).
 */
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import * as dagCbor from '@ipld/dag-cbor'
import { CarReader } from '@ipld/car'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { decodeCheckpoint } from '../../src/chain/checkpoint.ts'
import { decodeDecision } from '../../src/chain/decision.ts'
import { decodeReport } from '../../src/pol/gate.ts'
import { decodeRecord } from '../../src/chain/record.ts'
import { decodeDataset } from '../../src/chain/dataset.ts'
import { decodeHeader } from '../../src/chain/header.ts'
import { verifyMessage } from '../../src/chain/keys.ts'
import { decodeLedgerDocument } from '../../src/chain/ledger.ts'
import { decodeMeta } from '../../src/chain/meta.ts'
import { decodeParamIndex } from '../../src/chain/paramindex.ts'
import { decodeCertificate } from '../../src/chain/pol.ts'
import { decodeSubmission } from '../../src/chain/submission.ts'
import { decodeBlockAnnouncement, decodeRequest, decodeResponseHead, decodeStatus } from '../../relay/p2p/messages.ts'
import { decodeTensorBlock, dequantize, encodeTensorBlock } from '../../src/tensor/tensorblock.ts'
import { decodeTBlockHeader } from '../../src/tensor/tblock.ts'
import { importPayload, TILE_SIZE } from '../../src/tensor/tiles.ts'
import { buildPayload } from '../../src/tensor/payload.ts'
import { VECTORS_PATH, buildVectors, type ProtocolVectors } from '../vectors/generate.ts'

const vectors = JSON.parse(readFileSync(VECTORS_PATH, 'utf8')) as ProtocolVectors
const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'))
const tmp = mkdtempSync(join(tmpdir(), 'blyan-vectors-'))
after(() => rmSync(tmp, { recursive: true, force: true }))

function leadingZeroBits(bytes: Uint8Array): number {
  const bits = [...bytes].map((b) => b.toString(2).padStart(8, '0')).join('')
  return bits.length - bits.replace(/^0+/, '').length
}

test('every CID and key quoted in docs/protocol.md is one of the committed vectors (the document cannot drift)', () => {
  const doc = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8')
  const json = JSON.stringify(vectors)
  const quoted = [...doc.matchAll(/\b(baf[a-z2-7]{50,})\b|`([0-9a-f]{64,})`/g)].map((m) => m[1] ?? m[2] ?? '')
  assert.ok(quoted.length >= 10, `only ${quoted.length} quoted values found`)
  for (const q of quoted) assert.ok(json.includes(q), `docs/protocol.md quotes ${q.slice(0, 20)}..., which is not in the vectors`)
})

test('the committed vectors are what the code produces', async () => {
  assert.deepEqual(await buildVectors(), vectors, 'encodings changed: review, then run `npm run vectors` and update docs/protocol.md')
})

describe('header vectors, checked with multiformats and @ipld/dag-cbor only', () => {
  test('every block type is covered', () => {
    assert.deepEqual(new Set(vectors.headers.map((h) => `${h.chain_id}:${h.block_type}`)), new Set(['A:meta', 'B:embedding', 'B:router', 'B:expert', 'C:reward', 'C:transfer', 'D:dataset', 'D:decision']))
  })
  for (const v of vectors.headers) {
    test(`${v.name}: CID, signing bytes, PoW`, async () => {
      const bytes = hex(v.dag_cbor_hex)
      const digest = await sha256.digest(bytes)
      const cid = CID.createV1(0x71, digest)
      assert.equal(cid.toString(), v.cid)
      assert.ok(leadingZeroBits(digest.digest) >= v.difficulty)
      const map = dagCbor.decode(bytes) as Record<string, unknown>
      assert.equal(map['nonce'], v.nonce)
      delete map['nonce']
      delete map['payload_sig']
      assert.equal(Buffer.from(dagCbor.encode(map)).toString('hex'), v.signing_bytes_hex)
      assert.equal(decodeHeader(bytes).chain_id, v.chain_id)
      assert.equal(Buffer.from(secp256k1.getPublicKey(hex(v.secret_key_hex), true)).toString('hex'), v.pubkey_hex)
    })
  }
})

/** SubjectPublicKeyInfo DER for a compressed secp256k1 key (RFC 5480): id-ecPublicKey, secp256k1. */
function spkiPem(publicKey: Uint8Array): string {
  const prefix = hex('3036301006072a8648ce3d020106052b8104000a032200')
  const der = Buffer.concat([prefix, publicKey])
  return `-----BEGIN PUBLIC KEY-----\n${der.toString('base64').match(/.{1,64}/g)?.join('\n')}\n-----END PUBLIC KEY-----\n`
}

function opensslVerify(pubPem: string, signatureDer: Uint8Array, message: Uint8Array, name: string): { ok: boolean; out: string } {
  writeFileSync(join(tmp, `${name}.pem`), pubPem)
  writeFileSync(join(tmp, `${name}.sig`), signatureDer)
  writeFileSync(join(tmp, `${name}.msg`), message)
  const r = spawnSync('openssl', ['dgst', '-sha256', '-verify', join(tmp, `${name}.pem`), '-signature', join(tmp, `${name}.sig`), join(tmp, `${name}.msg`)], { encoding: 'utf8' })
  if (r.error !== undefined) throw new Error(`openssl is needed for this test (apt-get install openssl): ${r.error.message}`)
  return { ok: r.status === 0 && /Verified OK/.test(r.stdout), out: r.stdout + r.stderr }
}

describe('signatures interoperate with OpenSSL', () => {
  for (const v of vectors.headers) {
    test(`${v.name}: our signature verifies with openssl dgst -sha256 -verify`, () => {
      const der = secp256k1.Signature.fromBytes(hex(v.signature_hex), 'compact').toBytes('der')
      const r = opensslVerify(spkiPem(hex(v.pubkey_hex)), der, hex(v.signing_bytes_hex), v.name.replace(/\W/g, '_'))
      assert.ok(r.ok, r.out)
    })
  }

  test('openssl rejects a tampered message, so the check above can fail', () => {
    const v = vectors.headers[0]!
    const msg = hex(v.signing_bytes_hex)
    msg[3] = (msg[3] as number) ^ 1
    const der = secp256k1.Signature.fromBytes(hex(v.signature_hex), 'compact').toBytes('der')
    assert.equal(opensslVerify(spkiPem(hex(v.pubkey_hex)), der, msg, 'tampered').ok, false)
  })

  test('a signature made by openssl verifies with our code once in low-S form, and its high-S twin is refused', () => {
    const keyPem = join(tmp, 'ossl.key')
    execFileSync('openssl', ['ecparam', '-name', 'secp256k1', '-genkey', '-noout', '-out', keyPem])
    const pubDer = execFileSync('openssl', ['ec', '-in', keyPem, '-pubout', '-conv_form', 'compressed', '-outform', 'DER'], { stdio: ['ignore', 'pipe', 'ignore'] })
    const publicKey = Uint8Array.from(pubDer.subarray(pubDer.length - 33))
    const message = new TextEncoder().encode('signed by openssl')
    writeFileSync(join(tmp, 'ossl.msg'), message)
    const der = execFileSync('openssl', ['dgst', '-sha256', '-sign', keyPem, join(tmp, 'ossl.msg')])
    const sig = secp256k1.Signature.fromBytes(Uint8Array.from(der), 'der')
    const n = secp256k1.Point.CURVE().n
    const low = sig.hasHighS() ? new secp256k1.Signature(sig.r, n - sig.s) : sig
    const high = new secp256k1.Signature(low.r, n - low.s)
    assert.equal(verifyMessage(low.toBytes('compact'), message, publicKey), true)
    assert.equal(verifyMessage(high.toBytes('compact'), message, publicKey), false)
  })
})

describe('document vectors', () => {
  const decoders: Record<string, (b: Uint8Array) => unknown> = {
    'blyan/meta': decodeMeta,
    'blyan/dataset': decodeDataset,
    'blyan/dataset-decision': decodeDecision,
    'blyan/dataset-report': decodeReport,
    'blyan/training-record': decodeRecord,
    'blyan/reward': (b) => decodeLedgerDocument(b, 'reward'),
    'blyan/transfer': (b) => decodeLedgerDocument(b, 'transfer'),
    'blyan/pol-certificate': decodeCertificate,
    'blyan/param-index': decodeParamIndex
  }
  for (const v of vectors.documents) {
    test(`${v.name}: CID recomputes, decodes`, async () => {
      const bytes = hex(v.dag_cbor_hex)
      assert.equal(CID.createV1(0x71, await sha256.digest(bytes)).toString(), v.cid)
      assert.equal((dagCbor.decode(bytes) as { kind: string }).kind, v.kind)
      const decode = decoders[v.kind]
      assert.ok(decode !== undefined, v.kind)
      decode(bytes)
    })
  }
})

describe('TensorBlock vectors', () => {
  for (const v of vectors.tensorblocks) {
    test(`${v.name}`, () => {
      const bytes = hex(v.bytes_hex)
      assert.equal(Buffer.from(bytes.subarray(0, 128)).toString('hex'), v.header_hex)
      const h = decodeTBlockHeader(hex(v.header_hex))
      assert.equal(h.dtype, v.dtype)
      assert.equal(h.rows * h.cols, v.values.length)
      assert.equal(Buffer.from(encodeTensorBlock(Float32Array.from(v.values), v.shape, v.dtype)).toString('hex'), v.bytes_hex)
      const back = dequantize(decodeTensorBlock(bytes))
      const view = decodeTensorBlock(bytes)
      back.forEach((x, i) => {
        const scale = view.scales === null ? 0 : (view.scales[Math.floor(i / h.cols)] as number)
        const tol = v.dtype === 'int8' ? scale / 2 : v.dtype === 'fp16' ? Math.abs(v.values[i] as number) * 2 ** -11 : 0
        assert.ok(Math.abs(x - (v.values[i] as number)) <= tol + 1e-12, `${v.name}[${i}]: ${x} vs ${v.values[i]}`)
      })
    })
  }
})

describe('submission vectors', () => {
  for (const v of vectors.submissions) {
    test(`${v.name}: a CARv1 read by @ipld/car, every block hashing to its CID, accepted by decodeSubmission`, async () => {
      const car = hex(v.car_hex)
      const reader = await CarReader.fromBytes(car)
      assert.deepEqual((await reader.getRoots()).map(String), v.roots)
      const cids: string[] = []
      for await (const { cid, bytes } of reader.blocks()) {
        assert.ok(CID.createV1(cid.code, await sha256.digest(bytes)).equals(cid))
        cids.push(cid.toString())
      }
      assert.deepEqual(cids, v.blocks)
      const sub = await decodeSubmission(car)
      assert.equal(CID.createV1(0x71, await sha256.digest(sub.input.header)).toString(), v.roots[0])
    })
  }
})

describe('payload vectors: tiles are plain 256 KiB slices, named by raw sha2-256 CIDs', () => {
  for (const v of vectors.payloads) {
    test(`${v.name}`, async () => {
      const bytes = v.bytes_hex !== undefined
        ? hex(v.bytes_hex)
        : buildPayload([{ name: 'ramp', values: new Float32Array(600 * 256).map((_, i) => ((i % 1000) - 500) / 256), shape: [600, 256], dtype: 'fp32' }])
      assert.equal(bytes.length, v.size)
      if (v.bytes_sha256 !== undefined) assert.equal(Buffer.from((await sha256.digest(bytes)).digest).toString('hex'), v.bytes_sha256)
      const tiles: string[] = []
      for (let at = 0; at < bytes.length; at += TILE_SIZE) tiles.push(CID.createV1(0x55, await sha256.digest(bytes.subarray(at, at + TILE_SIZE))).toString())
      assert.deepEqual(tiles, v.tile_cids)
      assert.equal((await importPayload(bytes)).cid.toString(), v.root_cid)
      if (tiles.length === 1) assert.equal(v.root_cid, tiles[0], 'a one-tile payload is its own raw leaf')
    })
  }
})

describe('checkpoint vectors, checked with @ipld/dag-cbor, multiformats and @noble/curves alone', () => {
  for (const v of vectors.checkpoints) {
    test(`${v.name}: id and CID recompute, every signature verifies over sha256(body), the body is the document less its signatures`, async () => {
      const body = hex(v.body_hex)
      const doc = hex(v.dag_cbor_hex)
      assert.equal(CID.createV1(0x71, await sha256.digest(body)).toString(), v.id)
      assert.equal(CID.createV1(0x71, await sha256.digest(doc)).toString(), v.cid)
      const { signatures, ...rest } = dagCbor.decode(doc) as { signatures: { validator: Uint8Array; signature: Uint8Array }[] }
      assert.equal(Buffer.from(dagCbor.encode(rest)).toString('hex'), v.body_hex)
      assert.equal((rest as { kind: string }).kind, 'blyan/checkpoint')
      assert.equal(signatures.length, v.signers.length)
      const digest = (await sha256.digest(body)).digest
      v.signers.forEach((s, i) => {
        assert.equal(Buffer.from((signatures[i] as { validator: Uint8Array }).validator).toString('hex'), s.pubkey_hex)
        assert.equal(secp256k1.verify(hex(s.signature_hex), digest, hex(s.pubkey_hex), { prehash: false, lowS: true, format: 'compact' }), true)
        assert.equal(Buffer.from(secp256k1.sign(digest, hex(s.secret_key_hex), { prehash: false, lowS: true, format: 'compact' })).toString('hex'), s.signature_hex, 'RFC 6979: the same signature')
      })
      assert.equal(v.quorum, Math.floor((2 * v.validators) / 3) + 1)
      decodeCheckpoint(doc)
    })
  }
})

describe('lease request vectors', () => {
  for (const v of vectors.leases) {
    test(`${v.name}: the message is the documented text, the signature verifies over its sha256`, async () => {
      assert.equal(v.message, `blyan-${v.action}/1 ${v.job} ${v.miner_hex} ${v.at}`)
      const digest = (await sha256.digest(new TextEncoder().encode(v.message))).digest
      assert.equal(secp256k1.verify(hex(v.signature_hex), digest, hex(v.miner_hex), { prehash: false, lowS: true, format: 'compact' }), true)
      assert.deepEqual(JSON.parse(v.body), { miner: v.miner_hex, at: v.at, signature: v.signature_hex })
    })
  }
})

describe('attempt vectors (docs/protocol.md §15 Attempts)', () => {
  for (const v of vectors.attempts) {
    test(`${v.name}: start and seed are bytes 0..5 and 6..9 of sha256 of the documented input`, async () => {
      const te = new TextEncoder()
      const n = v.attempt
      assert.equal(v.input_hex, Buffer.concat([te.encode('blyan-attempt/1'), hex(v.base_bytes_hex), hex(v.miner_hex), Uint8Array.from([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255])]).toString('hex'))
      const d = Buffer.from((await sha256.digest(hex(v.input_hex))).digest)
      assert.deepEqual([d.readUIntBE(0, 6), d.readUInt32BE(6)], [v.start, v.seed])
    })
  }
})

describe('peer network vectors (docs/protocol.md §18), checked with @ipld/dag-cbor alone', () => {
  const decoders: Record<string, (bytes: Uint8Array) => unknown> = {
    'blyan/block-announcement': decodeBlockAnnouncement, 'blyan/status': decodeStatus, 'blyan/response': decodeResponseHead,
    'blyan/blocks-by-range': decodeRequest, 'blyan/blocks-by-root': decodeRequest, 'blyan/checkpoints': decodeRequest
  }
  for (const v of vectors.peer) {
    test(`${v.name}: a canonical DAG-CBOR map of its kind, which the node decodes`, async () => {
      const bytes = hex(v.dag_cbor_hex)
      const value = dagCbor.decode(bytes) as { kind: string; version: number; car?: Uint8Array | null; header?: Uint8Array }
      assert.equal(Buffer.from(dagCbor.encode(value)).toString('hex'), v.dag_cbor_hex, 'canonical')
      assert.equal(value.version, 1)
      const decode = decoders[value.kind]
      assert.ok(decode !== undefined, `known kind ${value.kind}`)
      decode(bytes)
      if (value.kind === 'blyan/block-announcement') {
        assert.match(v.topic ?? '', /^\/blyan\/bafy[a-z0-9]+\/blocks\/1$/)
        if (value.car !== null && value.car !== undefined) {
          const roots = await (await CarReader.fromBytes(value.car)).getRoots()
          assert.equal(roots[0]?.toString(), CID.create(1, 0x71, await sha256.digest(value.header as Uint8Array)).toString(), 'the CAR is the header\'s submission')
        }
      }
    })
  }
})
