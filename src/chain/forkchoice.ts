/**
 * Fork choice for linear chains (A, and likewise C and D): the tip with the most cumulative work
 * (sum of 2^difficulty from the chain's first block) wins; equal work goes to the lowest CID bytes,
 * so every node picks the same head without a clock.
 *
 * @module
 */
import type { CID } from 'multiformats/cid'
import { compareCids } from './cbor.ts'

export interface Tip {
  readonly cid: CID
  /** Cumulative work of the branch ending here. */
  readonly work: bigint
}

/** Negative when `a` is the better tip, positive when `b` is, 0 only for the same CID. */
export function compareTips(a: Tip, b: Tip): number {
  if (a.work !== b.work) return a.work > b.work ? -1 : 1
  return compareCids(a.cid, b.cid)
}

/** The best of `tips`, or undefined for none. */
export function bestTip<T extends Tip>(tips: Iterable<T>): T | undefined {
  let best: T | undefined
  for (const tip of tips) if (best === undefined || compareTips(tip, best) < 0) best = tip
  return best
}
