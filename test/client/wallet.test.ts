/**
 * The wallet's pure parts and what it keeps in IndexedDB (fake-indexeddb):
 *
 * - pasted secret keys: accepted in the forms people paste them, refused with a code saying why,
 *   checked against secp256k1's generator and order (SEC 2 §2.4.1) rather than against ourselves;
 * - the wallet record: round trip, a damaged record reported and never replaced by accident;
 * - the miner's stored run: round trip, damaged records read as no run, what a reload does with it;
 * - the Miner's wallet operations: create, export (with the warning, recording the time), import
 *   refusing bad text and an accidental replacement, forget.
 */
import 'fake-indexeddb/auto'
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { cidOf, encodeCbor } from '../../src/codec/cbor.ts'
import { idbKV } from '../../src/store/kv.ts'
import { clearMinerRun, loadMinerRun, minerRunFrom, resumePlan, saveMinerRun, type StoredMinerRun } from '../../src/store/miner-run.ts'
import { EXPORT_WARNING, WalletKeyError, createSecretKey, parseSecretKey, publicKeyHex, secretKeyHex } from '../../src/wallet/keys.ts'
import { deleteWallet, loadWallet, saveWallet, walletFrom, walletRecord } from '../../src/wallet/store.ts'
import { Miner } from '../../src/client/miner.ts'
import { jobOrder } from '../../src/pol/mining.ts'
import type { Job } from '../../src/net/relay-api.ts'
import { trainExpert } from '../../src/train/train.ts'
import { TRAIN_BASE_ARCH } from '../fixtures/train-arch.ts'

/** SEC 2 §2.4.1: the order n of secp256k1's generator G, and G itself (compressed): the public key of secret 1. */
const N = 'fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141'
const N_MINUS_1 = 'fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140'
const G = '0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798'
const ONE = '0000000000000000000000000000000000000000000000000000000000000001'

let dbs = 0
const freshKV = (name: string) => idbKV(`${name}-test-${++dbs}`, name)

function code(f: () => unknown): string {
  try {
    f()
  } catch (e) {
    assert.ok(e instanceof WalletKeyError, `expected WalletKeyError, got ${String(e)}`)
    assert.equal(e.name, 'WalletKeyError')
    return e.code
  }
  assert.fail('expected a throw')
}

describe('wallet keys', () => {
  test('secret 1 is the generator: the public key is G', () => {
    assert.equal(publicKeyHex(parseSecretKey(ONE)), G)
  })

  test('pasted forms: any case, 0x, whitespace and line breaks are accepted', () => {
    const key = createSecretKey()
    const hex = secretKeyHex(key)
    assert.match(hex, /^[0-9a-f]{64}$/)
    for (const text of [hex, hex.toUpperCase(), `0x${hex}`, `  0X${hex}\n`, `${hex.slice(0, 32)}\n${hex.slice(32)}`, hex.replace(/(.{8})/g, '$1 ')]) {
      assert.equal(secretKeyHex(parseSecretKey(text)), hex, JSON.stringify(text))
    }
  })

  test('refusals say why: empty, not hex, wrong length, outside [1, n)', () => {
    assert.equal(code(() => parseSecretKey('')), 'E_KEY_EMPTY')
    assert.equal(code(() => parseSecretKey('  0x ')), 'E_KEY_EMPTY')
    assert.equal(code(() => parseSecretKey(`${ONE.slice(1)}g`)), 'E_KEY_HEX')
    assert.equal(code(() => parseSecretKey('bafyreigdmqpykrgxyaxtlafqpqhzrb7qy2rh75nldvfd4tucqmi6kfxzxe')), 'E_KEY_HEX')
    assert.equal(code(() => parseSecretKey(ONE.slice(2))), 'E_KEY_LENGTH')
    assert.equal(code(() => parseSecretKey(`${ONE}00`)), 'E_KEY_LENGTH')
    assert.equal(code(() => parseSecretKey(G)), 'E_KEY_LENGTH', 'a public key is not a secret key')
    assert.equal(code(() => parseSecretKey('0'.repeat(64))), 'E_KEY_RANGE')
    assert.equal(code(() => parseSecretKey(N)), 'E_KEY_RANGE')
    assert.equal(code(() => parseSecretKey('f'.repeat(64))), 'E_KEY_RANGE')
    assert.equal(secretKeyHex(parseSecretKey(N_MINUS_1)), N_MINUS_1, 'n - 1 is the largest secret key')
    assert.throws(() => parseSecretKey(7 as unknown as string), TypeError)
  })

  test('two created keys differ', () => {
    assert.notEqual(secretKeyHex(createSecretKey()), secretKeyHex(createSecretKey()))
  })
})

describe('wallet record', () => {
  test('round trip; nothing stored is no wallet', async () => {
    const kv = freshKV('wallet')
    assert.deepEqual(await loadWallet(kv), { kind: 'none' })
    const record = walletRecord(parseSecretKey(ONE), 'imported', 1000)
    assert.equal(record.publicKey, G)
    await saveWallet(record, kv)
    const back = await loadWallet(kv)
    assert.equal(back.kind, 'ok')
    assert.deepEqual(back.kind === 'ok' ? back.record : null, record)
    await deleteWallet(kv)
    assert.deepEqual(await loadWallet(kv), { kind: 'none' })
  })

  test('a damaged record is reported, with the reason', () => {
    const good = walletRecord(parseSecretKey(ONE), 'created', 5)
    assert.equal(walletFrom('x').kind, 'damaged')
    assert.equal(walletFrom({ ...good, secretKey: 'zz' }).kind, 'damaged')
    const other = walletFrom({ ...good, publicKey: publicKeyHex(createSecretKey()) })
    assert.equal(other.kind, 'damaged')
    assert.match(other.kind === 'damaged' ? other.reason : '', /does not belong/)
    // Fields that do not matter for the key fall back instead.
    const odd = walletFrom({ ...good, source: 'stolen', createdAt: -1, exportedAt: 'yesterday' })
    assert.equal(odd.kind, 'ok')
    assert.deepEqual(odd.kind === 'ok' ? [odd.record.source, odd.record.createdAt, odd.record.exportedAt] : null, ['imported', 0, null])
  })

  test('saving checks the record', async () => {
    const record = walletRecord(parseSecretKey(ONE), 'created', 5)
    await assert.rejects(saveWallet({ ...record, publicKey: G.replace('02', '03') }, freshKV('wallet')), TypeError)
    assert.throws(() => walletRecord(parseSecretKey(ONE), 'found' as 'created', 5), RangeError)
  })
})

describe('miner run state', () => {
  const cid = cidOf(encodeCbor({ candidate: 1 })).toString()
  const run: StoredMinerRun = { relay: 'http://127.0.0.1:8080', miner: G, backend: 'cpu', keepGoing: false, job: { id: '0123456789abcdef', expert: 'layer0.expert1' }, candidate: null, startedAt: 7 }

  test('round trip, cleared, and what a reload does with it', async () => {
    const kv = freshKV('miner')
    assert.equal(await loadMinerRun(kv), null)
    await saveMinerRun(run, kv)
    assert.deepEqual(await loadMinerRun(kv), run)
    assert.deepEqual(resumePlan(await loadMinerRun(kv), G), { kind: 'restart', run })
    const submitted = { ...run, candidate: cid }
    await saveMinerRun(submitted, kv)
    assert.deepEqual(resumePlan(await loadMinerRun(kv), G), { kind: 'follow', candidate: cid, run: submitted })
    assert.deepEqual(resumePlan(submitted, publicKeyHex(createSecretKey())), { kind: 'none' }, 'another wallet does not resume it')
    assert.deepEqual(resumePlan(submitted, null), { kind: 'none' })
    await clearMinerRun(kv)
    assert.equal(await loadMinerRun(kv), null)
    assert.deepEqual(resumePlan(null, G), { kind: 'none' })
  })

  test('damaged records read as no run; unknown backends as cpu', () => {
    for (const bad of [null, 'x', { ...run, relay: 'ftp://x' }, { ...run, miner: 'ab' }, { ...run, job: { id: 'nothex', expert: 'layer0.expert1' } },
      { ...run, job: { id: '0123456789abcdef', expert: 'router' } }, { ...run, candidate: 'not a cid' }]) {
      assert.equal(minerRunFrom(bad), null, JSON.stringify(bad))
    }
    assert.equal(minerRunFrom({ ...run, backend: 'tpu' })?.backend, 'cpu')
    assert.equal(minerRunFrom({ ...run, keepGoing: 'yes' })?.keepGoing, false)
    assert.deepEqual(minerRunFrom({ ...run, job: null }), { ...run, job: null })
  })

  test('saving checks each field and names it', async () => {
    const kv = freshKV('miner')
    await assert.rejects(saveMinerRun({ ...run, relay: 'nope' }, kv), /relay/)
    await assert.rejects(saveMinerRun({ ...run, miner: 'ab' }, kv), /miner/)
    await assert.rejects(saveMinerRun({ ...run, backend: 'tpu' as 'cpu' }, kv), /backend/)
    await assert.rejects(saveMinerRun({ ...run, candidate: 'x' }, kv), /candidate/)
    await assert.rejects(saveMinerRun({ ...run, startedAt: -1 }, kv), /startedAt/)
    assert.equal(await loadMinerRun(kv), null, 'nothing was written')
  })
})

describe('Miner wallet operations', () => {
  const miner = () => new Miner({ walletKV: freshKV('wallet'), minerKV: freshKV('miner'), now: () => 42 })

  test('create, export with the warning, refuse a second create, forget', async () => {
    const m = miner()
    assert.deepEqual(await m.wallet(), { kind: 'none' })
    assert.equal((await m.exportWallet()).ok, false)
    const made = await m.createWallet()
    assert.ok(made.ok)
    assert.equal(made.wallet.source, 'created')
    assert.equal(made.wallet.exportedAt, null)
    assert.ok(!('secretKey' in made.wallet), 'the wallet info never carries the secret')
    const again = await m.createWallet()
    assert.equal(again.ok ? '' : again.code, 'E_WALLET_EXISTS')
    const exported = await m.exportWallet()
    assert.ok(exported.ok)
    assert.equal(exported.warning, EXPORT_WARNING)
    assert.match(exported.warning, /spend/)
    assert.match(exported.warning, /mine/)
    assert.equal(publicKeyHex(parseSecretKey(exported.secretKey)), made.wallet.publicKey)
    const status = await m.wallet()
    assert.equal(status.kind === 'ok' ? status.wallet.exportedAt : null, 42)
    assert.deepEqual(await m.forgetWallet(), { kind: 'none' })
    assert.deepEqual(await m.wallet(), { kind: 'none' })
  })

  test('import: bad text refused with its code; replacing another wallet only when asked; the same key is a no-op', async () => {
    const m = miner()
    const bad = await m.importWallet('0x1234', false)
    assert.deepEqual(bad.ok ? null : bad.code, 'E_KEY_LENGTH')
    const imported = await m.importWallet(ONE, false)
    assert.ok(imported.ok)
    assert.equal(imported.wallet.publicKey, G)
    assert.equal(imported.wallet.source, 'imported')
    assert.ok((await m.importWallet(ONE.toUpperCase(), false)).ok, 'the same key again')
    const other = secretKeyHex(createSecretKey())
    const refused = await m.importWallet(other, false)
    assert.equal(refused.ok ? '' : refused.code, 'E_WALLET_EXISTS')
    const replaced = await m.importWallet(other, true)
    assert.ok(replaced.ok)
    assert.equal(replaced.wallet.publicKey, publicKeyHex(parseSecretKey(other)))
  })

  test('device: the CPU trains; WebGPU is listed as unavailable until a trainer is given', async () => {
    const d = await miner().device()
    assert.deepEqual(d.backends.map((b) => [b.name, b.available]), [['cpu', true], ['webgpu', false]])
    assert.match(d.backends[1]?.reason ?? '', /WebGPU/)
    const withGpu = new Miner({ walletKV: freshKV('wallet'), trainers: { webgpu: async () => assert.fail('not called') }, device: async () => ({ cores: 8, memoryGiB: 16, gpu: 'test gpu', softwareGpu: null }) })
    const g = await withGpu.device()
    assert.deepEqual(g.backends.map((b) => [b.name, b.available]), [['cpu', true], ['webgpu', true]])
    assert.equal(g.cores, 8)
    const soft = await new Miner({ walletKV: freshKV('wallet'), trainers: { webgpu: async () => assert.fail('not called') }, device: async () => ({ cores: 8, memoryGiB: 16, gpu: 'google swiftshader', softwareGpu: 'SwiftShader' }) }).device()
    assert.match(soft.backends[1]?.detail ?? '', /a software GPU \(SwiftShader runs on the CPU\): slower than the CPU reference/)
    // Given the model's architecture, each trainer is timed on a synthetic copy of it (here the CPU reference twice).
    const timed = await new Miner({ walletKV: freshKV('wallet'), trainers: { webgpu: trainExpert }, device: async () => ({ cores: 2, memoryGiB: 4, gpu: 'test gpu', softwareGpu: null }) }).device(TRAIN_BASE_ARCH)
    assert.ok(timed.measured !== null && timed.measured.cpu > 0 && timed.measured.webgpu > 0, JSON.stringify(timed.measured))
    assert.equal(g.measured, null, 'nothing timed without an architecture')
  })

  test('the job board as the miner reads it: the job to restart first, then jobs leased to this key, then the least shared', () => {
    const job = (id: string, lease: string | null, sharedBy: string[] = []): Job => ({
      id, lease: lease === null ? null : { miner: lease, expiresAt: 0 }, sharedBy: sharedBy.map((miner) => ({ miner, expiresAt: 0 }))
    }) as unknown as Job
    const jobs = [job('a', null, ['x', 'y']), job('b', 'other'), job('c', G), job('d', null, ['x']), job('e', null, [G])]
    const ids = (prefer?: string) => jobOrder(jobs, G, prefer).map((j) => j.id)
    assert.deepEqual(ids(), ['c', 'e', 'b', 'd', 'a'])
    assert.deepEqual(ids('a'), ['a', 'c', 'e', 'b', 'd'])
    assert.deepEqual(jobs.map((j) => j.id), ['a', 'b', 'c', 'd', 'e'], 'the board is not reordered in place')
  })
})
