/**
 * Header validation throughput, and where the time goes.
 *
 * Validates the devnet's document blocks against an in-memory chain (chain B's UnixFS payload import
 * is payload work, measured by the tiles bench), then times each stage alone on the same headers:
 * decode with the header-only rules, PoW, signature. Rewards are reported apart: they also verify a
 * PoL certificate's quorum of validator signatures.
 */
import type { Built } from '../test/fixtures/devnet.ts'
import { decodeHeader, headerCid } from '../src/chain/header.ts'
import { checkPow, checkSignature, validateBlock } from '../src/chain/validate.ts'
import { Devnet, NOW } from '../test/fixtures/devnet.ts'
import { timeOf } from './measure.ts'

export async function run(): Promise<void> {
  const d = await Devnet.standard()
  const plain = ['genesis', 'train', 'validation', 'transfer'].map((n) => d.built.get(n) as Built)
  const reward = d.built.get('reward') as Built
  const reps = 50
  const full = await timeOf(async () => { for (const b of plain) await validateBlock(b.input, d.chain, { now: NOW }) }, reps)
  const decode = await timeOf(() => { for (const b of plain) decodeHeader(b.sealed.bytes) }, reps)
  const pow = await timeOf(() => { for (const b of plain) checkPow(headerCid(b.sealed.bytes), b.sealed.header.difficulty) }, reps)
  const sig = await timeOf(() => { for (const b of plain) checkSignature(b.sealed.header) }, reps)
  const n = plain.length
  const pct = (x: number, of: number): string => `${((100 * x) / of).toFixed(1)}%`
  console.log(`header validations/s (meta, dataset, transfer; every rule): ${(n / full).toFixed(0)}`)
  console.log(`  share: signature verification ${pct(sig, full)}, decode + header-only rules ${pct(decode, full)}, PoW hash ${pct(pow, full)}, links + documents + balances ${pct(full - sig - decode - pow, full)}`)
  const rewardFull = await timeOf(() => validateBlock(reward.input, d.chain, { now: NOW }), reps)
  const rewardSig = await timeOf(() => checkSignature(reward.sealed.header), reps)
  console.log(`reward validations/s (with a 3-of-4 PoL certificate): ${(1 / rewardFull).toFixed(0)}; header signature ${pct(rewardSig, rewardFull)}, certificate signatures and the rest ${pct(rewardFull - rewardSig, rewardFull)}`)
}
