/**
 * Consensus an author cannot buy: each block's difficulty is exactly chain A's, and finality by the
 * validator quorum (src/chain/checkpoint.ts). On the standard devnet (4 validators, quorum 3):
 *
 * - the attacks of issue 13, rebuilt in memory: a heavier branch of chain C that erases a later
 *   miner's reward, and a branch of chain D that hides the validation dataset. Without a checkpoint
 *   the attacker's branch becomes the head (the attack is real); after one, its blocks are refused
 *   (E_FINALIZED) and the head, the balance and the dataset stay;
 * - a block at a difficulty above the rules' is refused (E_DIFFICULTY), so no block weighs more;
 * - a checkpoint signed by 3 of 4 fixes the heads, by 2 it is refused (E_QUORUM); out of sequence,
 *   under the wrong signers, or naming heads that do not extend the last checkpoint: E_CHECKPOINT;
 * - a validator-set change in chain A by one validator cannot finalize itself.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { documentPayload, type HeaderDraft } from '../../src/chain/build.ts'
import {
  assembleCheckpoint, checkpointBodyBytes, checkpointId, decodeCheckpoint, encodeCheckpoint, nextCheckpointBody, signCheckpoint,
  type CheckpointBody, type CheckpointHeads
} from '../../src/chain/checkpoint.ts'
import { encodeDataset } from '../../src/chain/dataset.ts'
import { publicKeyOf } from '../../src/chain/keys.ts'
import { encodeLedgerDocument } from '../../src/chain/ledger.ts'
import { encodeMeta } from '../../src/chain/meta.ts'
import { poolsInForce } from '../../src/chain/governance.ts'
import { importPayload } from '../../src/tensor/tiles.ts'
import { assertRule } from '../fixtures/assert-rule.ts'
import { Devnet, DIFFICULTY, NOW, reseal, testKey, type Built } from '../fixtures/devnet.ts'

/** A chain C transfer from `from` to itself, built on `prev` (a block of the devnet, by name). */
function selfTransfer(d: Devnet, name: string, prev: string, amount = 1, difficulty = DIFFICULTY): Built {
  const doc = documentPayload(encodeLedgerDocument({ kind: 'blyan/transfer', version: 1, to: publicKeyOf(d.miner), amount, memo: 'mine' }))
  const p = d.built.get(prev) as Built
  const draft = { ...d.base('C', 'transfer'), index: p.sealed.header.index + 1, prev: p.sealed.cid, payload: doc.cid, payload_size: doc.size, difficulty } as HeaderDraft
  return d.make(name, draft, doc.bytes, d.miner)
}

/** A dataset block by a stranger on `prev` (any key may add to chain D). */
async function strangerDataset(d: Devnet, name: string, prev: string): Promise<Built> {
  const content = new TextEncoder().encode(`${name}: my own pool.\n`)
  const file = await importPayload(content)
  const doc = documentPayload(encodeDataset({
    kind: 'blyan/dataset', version: 1, name, license: 'CC0-1.0', split: 'train', format: 'text/plain; blank-line-separated',
    content: file.cid, content_size: content.length, description: ''
  }))
  const p = d.built.get(prev) as Built
  const draft = { ...d.base('D', 'dataset'), index: p.sealed.header.index + 1, prev: p.sealed.cid, payload: doc.cid, payload_size: doc.size } as HeaderDraft
  const built = { ...d.make(name, draft, doc.bytes, testKey('stranger')), files: [content] }
  d.built.set(name, built)
  return built
}

/** A devnet whose miner holds a reward and whose later reward (to the miner) pays alice a transfer: the victim's entry is 'transfer' at C:1. */
async function ledgerAttack(finalize: boolean): Promise<{ d: Devnet; branch: Built[] }> {
  const d = await Devnet.standard()
  if (finalize) d.chain.applyCheckpoint(d.signedCheckpoint())
  // The attacker (the miner, holding the reward at C:0) builds a longer branch from its reward, without alice's transfer.
  const branch = [selfTransfer(d, 'evil1', 'reward'), selfTransfer(d, 'evil2', 'evil1'), selfTransfer(d, 'evil3', 'evil2')]
  return { d, branch }
}

describe('consensus: fork choice no author can buy', () => {
  test('a block above its chain\'s difficulty is refused: no block outweighs another (E_DIFFICULTY)', async () => {
    const d = await Devnet.standard()
    await assertRule(() => d.submit(selfTransfer(d, 'heavy', 'transfer', 1, DIFFICULTY + 8)), 'E_DIFFICULTY', 'difficulty')
    await assertRule(() => d.submit(reseal(d.built.get('transfer') as Built, { difficulty: DIFFICULTY - 1 }, d.miner)), 'E_DIFFICULTY', 'difficulty')
  })

  test('without a checkpoint a longer branch erases a later entry (the attack is real)', async () => {
    const { d, branch } = await ledgerAttack(false)
    const alice = publicKeyOf(d.alice)
    assert.equal(d.chain.balance(alice, d.chain.head('C')?.cid ?? null), 100)
    for (const b of branch) await d.submit(b)
    assert.ok(d.chain.head('C')?.cid.equals(branch[2]?.sealed.cid as never), 'the attacker\'s branch is the head')
    assert.equal(d.chain.balance(alice, d.chain.head('C')?.cid ?? null), 0, 'alice\'s 100 are gone')
  })

  test('after a checkpoint signed by 3 of 4 validators the branch is refused (E_FINALIZED) and the entry stays', async () => {
    const { d, branch } = await ledgerAttack(true)
    const alice = publicKeyOf(d.alice)
    const head = d.chain.head('C')
    await assertRule(() => d.submit(branch[0] as Built), 'E_FINALIZED', 'index')
    await assertRule(() => d.submit(branch[1] as Built), 'E_INVALID_DEP', 'prev')
    assert.ok(d.chain.head('C')?.cid.equals(head?.cid as never))
    assert.equal(d.chain.balance(alice, d.chain.head('C')?.cid ?? null), 100)
    // Above the final height but on another branch: refused too.
    const fork = selfTransfer(d, 'fork', 'reward')
    const onFork = selfTransfer(d, 'onFork', 'fork')
    assert.equal(onFork.sealed.header.index, 2)
    await assertRule(() => d.submit(onFork), 'E_UNKNOWN_DEP', 'prev') // its parent was never accepted
    // A block that extends the final head is fine, and pending until the next checkpoint.
    const next = selfTransfer(d, 'next', 'transfer')
    const accepted = await d.submit(next)
    assert.equal(d.chain.isFinal(accepted), false)
    assert.equal(d.chain.isFinal(d.accepted('transfer')), true)
    assert.equal(d.chain.isFinal(d.accepted('reward')), true)
    d.chain.applyCheckpoint(d.signedCheckpoint())
    assert.equal(d.chain.isFinal(accepted), true)
  })

  test('a stranger\'s chain D branch cannot hide the validation dataset once it is final', async () => {
    const unfinal = await Devnet.standard()
    await unfinal.submit(await strangerDataset(unfinal, 'mine', 'train'))
    await unfinal.submit(await strangerDataset(unfinal, 'mine2', 'mine'))
    await unfinal.submit(await strangerDataset(unfinal, 'mine3', 'mine2'))
    await unfinal.submit(await strangerDataset(unfinal, 'mine4', 'mine3'))
    const headDoc = unfinal.chain.head('D')?.document as { name: string }
    assert.equal(headDoc.name, 'mine4', 'without finality the longer branch wins and the validation pool drops out of the head branch')
    // Even then the pools in force do not move: chain A names the chain D block its rules follow, and never moves it back.
    const next = await unfinal.submit(unfinal.metaBlock('after', 'beacon'))
    assert.deepEqual(next.header.depends_on, [unfinal.cid('approve-validation')])
    assert.deepEqual(poolsInForce(unfinal.chain, next).validation, [unfinal.cid('validation')])

    const d = await Devnet.standard()
    d.chain.applyCheckpoint(d.signedCheckpoint())
    const hiding = await strangerDataset(d, 'mine', 'train')
    await assertRule(() => d.submit(hiding), 'E_FINALIZED', 'index')
    assert.ok(d.chain.head('D')?.cid.equals(d.cid('approve-validation')))
  })

  test('a final block judged again (the explorer re-checks accepted blocks) still passes', async () => {
    const d = await Devnet.standard()
    d.chain.applyCheckpoint(d.signedCheckpoint())
    const { validateBlock } = await import('../../src/chain/validate.ts')
    for (const name of ['genesis', 'train', 'validation', 'reward', 'transfer']) {
      await validateBlock((d.built.get(name) as Built).input, d.chain, { now: NOW })
    }
  })
})

describe('finality checkpoints', () => {
  test('a body and its id: the same id whatever the signatures, bytes round-trip', async () => {
    const d = await Devnet.standard()
    const body = d.checkpointBody()
    const two = decodeCheckpoint(d.signedCheckpoint(2, body))
    const four = decodeCheckpoint(d.signedCheckpoint(4, body))
    assert.ok(checkpointId(two).equals(checkpointId(four)))
    assert.deepEqual(encodeCheckpoint(four), d.signedCheckpoint(4, body))
    assert.equal(four.number, 0)
    assert.ok(four.meta.equals(d.cid('genesis')), 'checkpoint 0 is signed under the genesis validator set')
    assert.deepEqual(checkpointBodyBytes(four), checkpointBodyBytes(body))
  })

  test('3 of 4 validators make a checkpoint; 2 do not (E_QUORUM); strangers and bad signatures are refused', async () => {
    const d = await Devnet.standard()
    await assertRule(() => d.chain.applyCheckpoint(d.signedCheckpoint(2)), 'E_QUORUM', 'checkpoint.signatures')
    const body = d.checkpointBody()
    const stranger = assembleCheckpoint(body, [...d.validators.slice(0, 2), testKey('stranger')].map((k) => signCheckpoint(body, k)))
    await assertRule(() => d.chain.applyCheckpoint(encodeCheckpoint(stranger)), 'E_CERT_SIGNER')
    const other = { ...body, number: 7 } as CheckpointBody
    const forged = assembleCheckpoint(body, [...d.validators.slice(0, 2).map((k) => signCheckpoint(body, k)), { ...signCheckpoint(other, d.validators[2] as Uint8Array), validator: publicKeyOf(d.validators[2] as Uint8Array) }])
    await assertRule(() => d.chain.applyCheckpoint(encodeCheckpoint(forged)), 'E_CERT_SIG')
    assert.equal(d.chain.checkpoint(), null, 'nothing applied')
    d.chain.applyCheckpoint(d.signedCheckpoint(3))
    assert.equal(d.chain.checkpoint()?.number, 0)
    d.chain.applyCheckpoint(d.signedCheckpoint(3, nextCheckpointBody(null, d.cid('genesis'), d.chain.checkpoint()?.heads as never)))
    assert.equal(d.chain.checkpoints().length, 1, 'the same checkpoint again is a no-op')
  })

  test('out of sequence, wrong signers, or heads that do not extend the last checkpoint: E_CHECKPOINT', async () => {
    const d = await Devnet.standard()
    const body = d.checkpointBody()
    await assertRule(() => d.chain.applyCheckpoint(d.signedCheckpoint(3, { ...body, number: 1 })), 'E_CHECKPOINT', 'checkpoint.number')
    await assertRule(() => d.chain.applyCheckpoint(d.signedCheckpoint(3, { ...body, meta: d.cid('beacon') })), 'E_CHECKPOINT', 'checkpoint.meta')
    await assertRule(() => d.chain.applyCheckpoint(d.signedCheckpoint(3, { ...body, heads: { ...body.heads, C: d.cid('expert0.0') } })), 'E_CHECKPOINT', 'checkpoint.heads.C')
    d.chain.applyCheckpoint(d.signedCheckpoint(3, body))
    // Checkpoint 1 must extend checkpoint 0: going back to the reward (C:0) is refused, as is dropping chain C.
    const back = nextCheckpointBody(d.chain.checkpoint(), d.cid('genesis'), { ...body.heads, C: d.cid('reward') })
    await assertRule(() => d.chain.applyCheckpoint(d.signedCheckpoint(3, back)), 'E_CHECKPOINT', 'checkpoint.heads.C')
    const dropped = nextCheckpointBody(d.chain.checkpoint(), d.cid('genesis'), { ...body.heads, C: null })
    await assertRule(() => d.chain.applyCheckpoint(d.signedCheckpoint(3, dropped)), 'E_CHECKPOINT', 'checkpoint.heads.C')
    // Checkpoint 1 is signed under checkpoint 0's chain A head (the beacon), not the genesis.
    const wrongMeta = { ...nextCheckpointBody(d.chain.checkpoint(), d.cid('genesis'), body.heads), meta: d.cid('genesis') }
    await assertRule(() => d.chain.applyCheckpoint(d.signedCheckpoint(3, wrongMeta)), 'E_CHECKPOINT', 'checkpoint.meta')
  })

  test('one validator\'s meta block naming a new validator set cannot finalize itself', async () => {
    const d = await Devnet.standard()
    d.chain.applyCheckpoint(d.signedCheckpoint())
    const rogue = testKey('rogue')
    const meta = { ...d.meta, validators: [publicKeyOf(rogue)] }
    // Chain A lets one validator sign a meta block, so the block is accepted: pending, not final.
    const takeover = await d.submit(d.metaBlock('takeover', 'beacon', meta))
    assert.equal(d.chain.isFinal(takeover), false)
    const body = nextCheckpointBody(d.chain.checkpoint(), d.cid('genesis'), { ...(d.chain.checkpoint()?.heads as CheckpointHeads), A: takeover.cid })
    const byRogue = (b: CheckpointBody): Uint8Array => encodeCheckpoint(assembleCheckpoint(b, [signCheckpoint(b, rogue)]))
    await assertRule(() => d.chain.applyCheckpoint(byRogue(body)), 'E_CERT_SIGNER') // signers are checkpoint 0's A head's set
    await assertRule(() => d.chain.applyCheckpoint(byRogue({ ...body, meta: takeover.cid })), 'E_CHECKPOINT', 'checkpoint.meta')
    // The old quorum can finalize it; only then does the new set sign.
    d.chain.applyCheckpoint(d.signedCheckpoint(3, body))
    assert.equal(d.chain.isFinal(takeover), true)
    const next = nextCheckpointBody(d.chain.checkpoint(), d.cid('genesis'), d.chain.checkpoint()?.heads as never)
    assert.ok(next.meta.equals(takeover.cid))
    d.chain.applyCheckpoint(byRogue(next))
  })
})
