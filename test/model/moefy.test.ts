import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { parseLlama2c } from '../../src/model/llama2c.ts'
import { moefy, type DenseFfn, type ExpertFfn } from '../../src/model/moefy.ts'
import { createRandom } from '../fixtures/random.ts'
import { SHARED_DATA_MISSING, sharedData } from '../fixtures/shared-data.ts'

/** SwiGLU in float64: w2 · (silu(w1·x) ⊙ w3·x), weights [out, in] row-major. */
function swiglu(w1: Float32Array, w2: Float32Array, w3: Float32Array, hidden: number, dim: number, x: Float64Array): Float64Array {
  const out = new Float64Array(dim)
  for (let i = 0; i < hidden; i++) {
    let a = 0
    let b = 0
    for (let r = 0; r < dim; r++) {
      a += (w1[i * dim + r] as number) * (x[r] as number)
      b += (w3[i * dim + r] as number) * (x[r] as number)
    }
    const h = (a / (1 + Math.exp(-a))) * b
    for (let r = 0; r < dim; r++) out[r] = (out[r] as number) + (w2[r * hidden + i] as number) * h
  }
  return out
}

function randomFfn(dim: number, hidden: number, seed: number): DenseFfn {
  const rnd = createRandom(seed)
  const vec = (n: number): Float32Array => Float32Array.from({ length: n }, () => rnd.float(0.3))
  return { dim, hidden, w1: vec(hidden * dim), w2: vec(dim * hidden), w3: vec(hidden * dim) }
}

function relativeError(a: Float64Array, b: Float64Array): number {
  let num = 0
  let den = 0
  for (let i = 0; i < a.length; i++) {
    num += ((a[i] as number) - (b[i] as number)) ** 2
    den += (b[i] as number) ** 2
  }
  return Math.sqrt(num / den)
}

function checkExact(ffn: DenseFfn, n: number, seed: number): void {
  const split = moefy(ffn, { experts: n })
  const m = split.expertHidden
  assert.equal(m, Math.ceil(ffn.hidden / n))
  assert.equal(split.experts.length, n)
  const rnd = createRandom(seed)
  for (let trial = 0; trial < 5; trial++) {
    const x = Float64Array.from({ length: ffn.dim }, () => rnd.float(2))
    const dense = swiglu(ffn.w1, ffn.w2, ffn.w3, ffn.hidden, ffn.dim, x)
    const sum = new Float64Array(ffn.dim)
    for (const e of split.experts as ExpertFfn[]) swiglu(e.w1, e.w2, e.w3, m, ffn.dim, x).forEach((v, r) => (sum[r] = (sum[r] as number) + v))
    const err = relativeError(sum, dense)
    assert.ok(err <= 1e-9, `N=${n}: relative error ${err}`)
  }
}

describe('moefy: a dense SwiGLU FFN split into experts', () => {
  for (const n of [1, 2, 3, 4, 7]) {
    test(`N=${n}: the experts' outputs add up to the dense FFN (float64, 1e-9 relative; hidden 172${172 % n === 0 ? '' : ', padded'})`, () => {
      checkExact(randomFfn(64, 172, 10 + n), n, 100 + n)
    })
  }

  test('on the real stories260K FFNs too (N = 4 and 7)', (t) => {
    const bytes = sharedData('stories260K.bin')
    if (bytes === null) return t.skip(SHARED_DATA_MISSING)
    const { config, weights } = parseLlama2c(bytes)
    for (const layer of [weights.layers[0], weights.layers[4]]) {
      for (const n of [4, 7]) checkExact({ dim: config.dim, hidden: config.hidden_dim, w1: layer!.w1, w2: layer!.w2, w3: layer!.w3 }, n, n)
    }
  })

  test('units: a permutation of the dense units plus zero padding, equal widths, canonical order', () => {
    const ffn = randomFfn(16, 43, 7)
    for (const n of [1, 2, 5, 6]) {
      const { units, expertHidden: m, experts } = moefy(ffn, { experts: n })
      assert.equal(units.length, n * m)
      const real = [...units].filter((u) => u >= 0).sort((a, b) => a - b)
      assert.deepEqual(real, Array.from({ length: 43 }, (_, i) => i), 'every unit exactly once')
      assert.equal(units.length - real.length, n * m - 43, 'padding fills the rest')
      const firsts: number[] = []
      for (let e = 0; e < n; e++) {
        const slots = [...units.subarray(e * m, (e + 1) * m)]
        const own = slots.filter((u) => u >= 0)
        assert.deepEqual(own, [...own].sort((a, b) => a - b), 'units ascending inside an expert')
        assert.deepEqual(slots.slice(own.length), new Array(m - own.length).fill(-1), 'padding last')
        firsts.push(own[0] ?? Infinity)
        const ex = experts[e] as ExpertFfn
        slots.forEach((u, j) => {
          for (let r = 0; r < 16; r++) {
            assert.equal(ex.w1[j * 16 + r], u < 0 ? 0 : ffn.w1[u * 16 + r])
            assert.equal(ex.w3[j * 16 + r], u < 0 ? 0 : ffn.w3[u * 16 + r])
            assert.equal(ex.w2[r * m + j], u < 0 ? 0 : ffn.w2[r * 43 + u])
          }
        })
      }
      assert.deepEqual(firsts, [...firsts].sort((a, b) => a - b), 'experts ordered by smallest unit')
    }
  })

  test('gate: shape [N, dim], row e = mean w1 row of expert e; deterministic per seed', () => {
    const ffn = randomFfn(16, 40, 8)
    const a = moefy(ffn, { experts: 4 })
    assert.equal(a.gate.length, 4 * 16)
    for (let e = 0; e < 4; e++) {
      const own = [...a.units.subarray(e * 10, (e + 1) * 10)].filter((u) => u >= 0)
      for (let r = 0; r < 16; r++) {
        const mean = own.reduce((s, u) => s + (ffn.w1[u * 16 + r] as number), 0) / own.length
        assert.equal(a.gate[e * 16 + r], Math.fround(mean))
      }
    }
    const b = moefy(ffn, { experts: 4 })
    assert.deepEqual(b.units, a.units)
    assert.deepEqual(b.gate, a.gate)
    assert.deepEqual(moefy(ffn, { experts: 4, seed: 0 }).units, a.units, 'seed 0 is the default')
    assert.deepEqual(moefy(ffn, { experts: 1 }).gate, Float32Array.from({ length: 16 }, (_, r) => Math.fround(Array.from({ length: 40 }, (_, u) => ffn.w1[u * 16 + r] as number).reduce((s, v) => s + v, 0) / 40)))
  })

  test('clusters group units whose w1 rows point the same way', () => {
    // 4 well-separated directions, 10 noisy copies each, shuffled: balanced k-means must recover them.
    const rnd = createRandom(9)
    const dim = 12
    const dirs = Array.from({ length: 4 }, (_, k) => Float32Array.from({ length: dim }, (_, r) => (r % 4 === k ? 1 : 0)))
    const order = Array.from({ length: 40 }, (_, i) => i).sort(() => rnd.next() - 0.5)
    const label = new Int32Array(40)
    const w1 = new Float32Array(40 * dim)
    order.forEach((u, i) => {
      label[u] = i % 4
      for (let r = 0; r < dim; r++) w1[u * dim + r] = (dirs[i % 4]![r] as number) * (1 + rnd.next()) + rnd.float(0.05)
    })
    const { units } = moefy({ dim, hidden: 40, w1, w2: new Float32Array(40 * dim), w3: new Float32Array(40 * dim) }, { experts: 4 })
    for (let e = 0; e < 4; e++) {
      const labels = new Set([...units.subarray(e * 10, (e + 1) * 10)].map((u) => label[u]))
      assert.equal(labels.size, 1, `expert ${e} mixes directions`)
    }
  })

  test('misuse throws RangeError / TypeError', () => {
    const ffn = randomFfn(8, 10, 1)
    assert.throws(() => moefy(ffn, { experts: 0 }), RangeError)
    assert.throws(() => moefy(ffn, { experts: 11 }), RangeError)
    assert.throws(() => moefy({ ...ffn, w2: new Float32Array(3) }, { experts: 2 }), RangeError)
    assert.throws(() => moefy(ffn, { experts: 1.5 }), RangeError)
  })
})
