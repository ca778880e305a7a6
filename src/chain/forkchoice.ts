/**
 * Fork choice for linear chains (A, C and D), and the branch walks finality needs.
 *
 * **Rules fix the work.** Every block's difficulty is exactly what its chain A rules require
 * (E_DIFFICULTY in validate.ts), so a block's work (2^difficulty) is not the author's choice and
 * cumulative work only counts blocks. The tip with the most cumulative work wins; equal work goes to
 * the lowest CID bytes, so every node picks the same head without a clock.
 *
 * **Finality bounds it.** Light PoW makes any heaviest-branch rule cheap to overturn, so a branch
 * may only win if it contains every block a validator checkpoint made final (checkpoint.ts):
 * `headOf` considers only tips that descend from the chain's final block.
 *
 * @module
 */
import type { CID } from 'multiformats/cid'
import { compareCids } from '../codec/cbor.ts'
import type { AcceptedBlock } from './view.ts'

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

/** Accepted blocks by CID: what a branch walk reads. */
export interface BlockLookup {
  get(cid: CID): AcceptedBlock | undefined
}

/** The block at `index` on the branch ending at `block` (walking `prev`), or undefined when the branch does not reach it. */
export function ancestorAt(view: BlockLookup, block: AcceptedBlock, index: number): AcceptedBlock | undefined {
  let b: AcceptedBlock | undefined = block
  while (b !== undefined && b.header.index > index) b = b.header.prev === null ? undefined : view.get(b.header.prev)
  return b !== undefined && b.header.index === index ? b : undefined
}

/** True when `block` is `ancestor` or descends from it by `prev`. */
export function descendsFrom(view: BlockLookup, block: AcceptedBlock, ancestor: AcceptedBlock): boolean {
  return ancestorAt(view, block, ancestor.header.index)?.cid.equals(ancestor.cid) === true
}

/**
 * The head of a linear chain: the best of `tips` that descends from `final` (the chain's final
 * block, undefined before any checkpoint). `final` itself when no tip does (it always has one).
 */
export function headOf<T extends AcceptedBlock>(view: BlockLookup, tips: readonly T[], final: AcceptedBlock | undefined): AcceptedBlock | undefined {
  if (final === undefined) return bestTip(tips)
  return bestTip(tips.filter((t) => descendsFrom(view, t, final))) ?? final
}
