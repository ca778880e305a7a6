/**
 * Seeded randomness shared by the model code: the PRNG (moefy's clustering, training batches) and
 * the order training draws sequences in. The CPU and WebGPU trainers draw through the same
 * `sequenceDraw`, so one seed gives both the same batches.
 *
 * @module
 */

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
export function mulberry32(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** order = a seeded Fisher-Yates permutation of 0..n-1. */
export function shuffle(order: Int32Array, random: () => number): void {
  for (let i = 0; i < order.length; i++) order[i] = i
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    const t = order[i] as number
    order[i] = order[j] as number
    order[j] = t
  }
}

/**
 * The index of the next sequence to train on: a seeded shuffle of 0..n-1 taken in order, reshuffled
 * after every full pass.
 */
export function sequenceDraw(n: number, seed: number): () => number {
  const order = new Int32Array(n)
  const random = mulberry32(seed)
  let next = n // position in `order`; a full pass reshuffles
  return () => {
    if (next === n) {
      shuffle(order, random)
      next = 0
    }
    return order[next++] as number
  }
}

/** The window index of every sequence of every step a trainer draws (`steps × batchSize` draws of sequenceDraw). */
export function batchOrder(n: number, steps: number, batchSize: number, seed: number): Int32Array {
  const draw = sequenceDraw(n, seed)
  const out = new Int32Array(steps * batchSize)
  for (let i = 0; i < out.length; i++) out[i] = draw()
  return out
}
