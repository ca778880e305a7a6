/**
 * Sampling the next token from logits, as llama2.c's run.c does: greedy at temperature 0, else
 * softmax(logits / temperature) sampled whole or within the top-p nucleus, with llama2.c's xorshift
 * generator so a seed gives the same draws here as there.
 *
 * @module
 */

export interface SamplerOptions {
  /** 0 (default) is greedy: the argmax, ties to the lower id. */
  readonly temperature?: number
  /** Nucleus: sample among the most likely tokens covering this probability (1 or 0: all). */
  readonly topP?: number
  /** Seed of the generator (llama2.c's rng_seed). */
  readonly seed?: number
}

/** llama2.c's random_u32 / random_f32 (xorshift64*), on a 64-bit state. */
export class Rng {
  #state: bigint
  constructor(seed: number) {
    this.#state = BigInt.asUintN(64, BigInt(Math.trunc(seed)) || 1n)
  }
  u32(): number {
    let s = this.#state
    s ^= s >> 12n
    s = BigInt.asUintN(64, s ^ (s << 25n))
    s ^= s >> 27n
    this.#state = s
    return Number(BigInt.asUintN(64, s * 0x2545f4914f6cdd1dn) >> 32n)
  }
  f32(): number {
    return (this.u32() >>> 8) / 16777216
  }
}

export function argmax(logits: Float32Array): number {
  let best = 0
  for (let i = 1; i < logits.length; i++) if ((logits[i] as number) > (logits[best] as number)) best = i
  return best
}

export class Sampler {
  readonly temperature: number
  readonly topP: number
  readonly #rng: Rng
  readonly #probs: Float32Array
  readonly #order: number[]

  constructor(vocabSize: number, options: SamplerOptions = {}) {
    const temperature = options.temperature ?? 0
    const topP = options.topP ?? 1
    if (!(temperature >= 0 && Number.isFinite(temperature))) throw new RangeError(`temperature: expected >= 0, got ${temperature}`)
    if (!(topP >= 0 && topP <= 1)) throw new RangeError(`topP: expected 0..1, got ${topP}`)
    this.temperature = temperature
    this.topP = topP
    this.#rng = new Rng(options.seed ?? 42)
    this.#probs = new Float32Array(vocabSize)
    this.#order = []
  }

  /** The next token from `logits` (not modified). */
  sample(logits: Float32Array): number {
    if (this.temperature === 0) return argmax(logits)
    const p = this.#probs
    let max = -Infinity
    for (let i = 0; i < p.length; i++) max = Math.max(max, (logits[i] as number) / this.temperature)
    let sum = 0
    for (let i = 0; i < p.length; i++) {
      p[i] = Math.exp((logits[i] as number) / this.temperature - max)
      sum += p[i] as number
    }
    for (let i = 0; i < p.length; i++) p[i] = (p[i] as number) / sum
    const coin = this.#rng.f32()
    return this.topP <= 0 || this.topP >= 1 ? sampleMult(p, coin) : this.#sampleTopP(p, coin)
  }

  /** llama2.c's sample_topp: drop tokens below (1 - p) / (n - 1), sort, cut at cumulative p. */
  #sampleTopP(p: Float32Array, coin: number): number {
    const cutoff = (1 - this.topP) / (p.length - 1)
    const order = this.#order
    order.length = 0
    for (let i = 0; i < p.length; i++) if ((p[i] as number) >= cutoff) order.push(i)
    order.sort((a, b) => (p[b] as number) - (p[a] as number) || a - b)
    let cumulative = 0
    let last = order.length - 1
    for (let i = 0; i < order.length; i++) {
      cumulative += p[order[i] as number] as number
      if (cumulative > this.topP) {
        last = i
        break
      }
    }
    const r = coin * cumulative
    let cdf = 0
    for (let i = 0; i <= last; i++) {
      cdf += p[order[i] as number] as number
      if (r < cdf) return order[i] as number
    }
    return order[last] as number
  }
}

function sampleMult(p: Float32Array, coin: number): number {
  let cdf = 0
  for (let i = 0; i < p.length; i++) {
    cdf += p[i] as number
    if (coin < cdf) return i
  }
  return p.length - 1
}
