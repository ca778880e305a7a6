/**
 * AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", 2019), as PyTorch's
 * torch.optim.AdamW computes it, for float32 parameters. At step t (from 1), for each entry:
 *
 *   p ← p · (1 − lr · weight_decay)                  decoupled decay, before the moment update
 *   m ← β1 m + (1 − β1) g
 *   v ← β2 v + (1 − β2) g²
 *   p ← p − lr · (m / (1 − β1^t)) / (sqrt(v / (1 − β2^t)) + eps)
 *
 * Float64 arithmetic, float32 storage of p, m and v (the stored, rounded m and v are what the
 * update reads, as a float32 GPU kernel would). Moments are allocated once per parameter in the
 * constructor; a step allocates nothing and is deterministic.
 *
 * ```ts
 * const opt = new AdamW([expert.w1, expert.w2, expert.w3], { lr: 1e-3 })
 * opt.step([grad.w1, grad.w2, grad.w3])
 * ```
 *
 * @module
 */

export interface AdamWOptions {
  /** Learning rate. @default 1e-3 */
  readonly lr?: number
  /** First-moment decay. @default 0.9 */
  readonly beta1?: number
  /** Second-moment decay. @default 0.999 */
  readonly beta2?: number
  /** Added to sqrt(v̂). @default 1e-8 */
  readonly eps?: number
  /** Decoupled weight decay per unit of lr. @default 0.01 */
  readonly weightDecay?: number
}

function anumberIn(value: number, title: string, min: number, max: number, minOpen: boolean, maxOpen: boolean): void {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new TypeError(`${title}: expected a finite number, got ${String(value)}`)
  if (value < min || value > max || (minOpen && value === min) || (maxOpen && value === max)) {
    throw new RangeError(`${title}: expected a number in ${minOpen ? '(' : '['}${min}, ${max}${maxOpen ? ')' : ']'}, got ${value}`)
  }
}

export class AdamW {
  readonly lr: number
  readonly beta1: number
  readonly beta2: number
  readonly eps: number
  readonly weightDecay: number
  #t = 0
  readonly #params: readonly Float32Array[]
  readonly #m: readonly Float32Array[] // same shapes as the parameters
  readonly #v: readonly Float32Array[]

  constructor(params: readonly Float32Array[], options: AdamWOptions = {}) {
    params.forEach((p, i) => {
      if (!(p instanceof Float32Array)) throw new TypeError(`params[${i}]: expected Float32Array`)
    })
    this.lr = options.lr ?? 1e-3
    this.beta1 = options.beta1 ?? 0.9
    this.beta2 = options.beta2 ?? 0.999
    this.eps = options.eps ?? 1e-8
    this.weightDecay = options.weightDecay ?? 0.01
    anumberIn(this.lr, 'lr', 0, Infinity, true, false)
    anumberIn(this.beta1, 'beta1', 0, 1, false, true)
    anumberIn(this.beta2, 'beta2', 0, 1, false, true)
    anumberIn(this.eps, 'eps', 0, Infinity, false, false)
    anumberIn(this.weightDecay, 'weightDecay', 0, Infinity, false, false)
    this.#params = [...params]
    this.#m = params.map((p) => new Float32Array(p.length))
    this.#v = params.map((p) => new Float32Array(p.length))
  }

  /** Steps taken. */
  get t(): number {
    return this.#t
  }

  /** One update of every parameter from its gradient (grads[i] has params[i]'s length), at rate `lr` (a schedule's value; default the constructor's). */
  step(grads: readonly Float32Array[], lr: number = this.lr): void {
    anumberIn(lr, 'lr', 0, Infinity, true, false)
    if (grads.length !== this.#params.length) throw new RangeError(`grads: expected ${this.#params.length} arrays, got ${grads.length}`)
    grads.forEach((g, i) => {
      if (!(g instanceof Float32Array) || g.length !== (this.#params[i] as Float32Array).length) throw new RangeError(`grads[${i}]: expected Float32Array of ${(this.#params[i] as Float32Array).length}`)
    })
    const t = ++this.#t
    const { beta1: b1, beta2: b2, eps } = this
    const decay = 1 - lr * this.weightDecay
    const c1 = 1 - Math.pow(b1, t)
    const c2 = 1 - Math.pow(b2, t)
    for (let k = 0; k < this.#params.length; k++) {
      const p = this.#params[k] as Float32Array
      const g = grads[k] as Float32Array
      const m = this.#m[k] as Float32Array
      const v = this.#v[k] as Float32Array
      for (let i = 0; i < p.length; i++) {
        const gi = g[i] as number
        m[i] = b1 * (m[i] as number) + (1 - b1) * gi
        v[i] = b2 * (v[i] as number) + (1 - b2) * gi * gi
        const mHat = (m[i] as number) / c1
        const vHat = (v[i] as number) / c2
        p[i] = (p[i] as number) * decay - (lr * mHat) / (Math.sqrt(vHat) + eps)
      }
    }
  }
}
