/**
 * The merge loop both BPE tokenizers share: repeatedly merge the adjacent pair that ranks best,
 * the leftmost one on ties, until no adjacent pair can merge.
 *
 * llama2.c's run.c rescans the whole sequence after every merge (O(n²)), which takes seconds on a
 * TinyStories story. Hugging Face's `Word::merge_all` (models/bpe/word.rs) gets the same result
 * with a priority queue ordered by (rank, position): symbols only ever grow to the right, so the
 * left symbol's original index orders pairs exactly as a left-to-right scan would, and an entry
 * whose symbols have changed since it was queued is simply skipped. Both tokenizers use this one
 * queue; the test suite checks it against a literal port of run.c's scan.
 *
 * @module
 */

/** What an adjacent pair (left, right) merges into; lower `priority` merges first. */
export interface PairMerge {
  readonly priority: number
  readonly id: number
}

/** The merge for an adjacent pair of token ids, or undefined when the pair does not merge. */
export type PairLookup = (left: number, right: number) => PairMerge | undefined

/** A queued candidate: symbols[pos] (id `left`) and its right neighbour (id `right`) merge into `id`. */
interface Candidate {
  readonly priority: number
  readonly pos: number
  readonly left: number
  readonly right: number
  readonly id: number
}

function before(a: Candidate, b: Candidate): boolean {
  return a.priority < b.priority || (a.priority === b.priority && a.pos < b.pos)
}

/** A binary min-heap of candidates, ordered by (priority, pos). */
class CandidateHeap {
  readonly #items: Candidate[] = []

  get size(): number {
    return this.#items.length
  }

  push(c: Candidate): void {
    const a = this.#items
    a.push(c)
    let i = a.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(a[i] as Candidate, a[parent] as Candidate)) break
      ;[a[i], a[parent]] = [a[parent] as Candidate, a[i] as Candidate]
      i = parent
    }
  }

  pop(): Candidate {
    const a = this.#items
    const top = a[0] as Candidate
    const last = a.pop() as Candidate
    if (a.length > 0) {
      a[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < a.length && before(a[l] as Candidate, a[m] as Candidate)) m = l
        if (r < a.length && before(a[r] as Candidate, a[m] as Candidate)) m = r
        if (m === i) break
        ;[a[i], a[m]] = [a[m] as Candidate, a[i] as Candidate]
        i = m
      }
    }
    return top
  }
}

/**
 * Merge `symbols` (token ids) as BPE does: while some adjacent pair has a merge, merge the pair
 * with the lowest priority, the leftmost of equals. Returns the merged ids; `symbols` is untouched.
 */
export function mergePairs(symbols: readonly number[], lookup: PairLookup): number[] {
  const n = symbols.length
  if (n < 2) return [...symbols]
  const ids = [...symbols]
  const next = Int32Array.from({ length: n }, (_, i) => (i + 1 < n ? i + 1 : -1))
  const prev = Int32Array.from({ length: n }, (_, i) => i - 1)
  const alive = new Uint8Array(n).fill(1)
  const heap = new CandidateHeap()
  const offer = (pos: number, right: number): void => {
    const left = ids[pos] as number
    const rightId = ids[right] as number
    const m = lookup(left, rightId)
    if (m !== undefined) heap.push({ priority: m.priority, pos, left, right: rightId, id: m.id })
  }
  for (let i = 0; i + 1 < n; i++) offer(i, i + 1)
  while (heap.size > 0) {
    const c = heap.pop()
    const r = next[c.pos] as number
    // Stale: the left symbol was absorbed, or either side has merged since this was queued.
    if (alive[c.pos] === 0 || r === -1 || ids[c.pos] !== c.left || ids[r] !== c.right) continue
    ids[c.pos] = c.id
    alive[r] = 0
    const after = next[r] as number
    next[c.pos] = after
    if (after !== -1) prev[after] = c.pos
    const p = prev[c.pos] as number
    if (p !== -1) offer(p, c.pos)
    if (after !== -1) offer(c.pos, after)
  }
  const out: number[] = []
  for (let i = 0; i !== -1; i = next[i] as number) out.push(ids[i] as number)
  return out
}
