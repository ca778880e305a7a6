/**
 * The host side of the kernels, checked against the WGSL text (no GPU needed):
 * - every packer's field list is its shader's `struct Params`, field by field (parsed from the
 *   source), and a packed buffer reads back each field at the WGSL offset with the WGSL size;
 * - the shared `Step` and `Route` structs (shaders/common) have one definition, which agrees with
 *   ROUTE_BYTES and NO_SLOT;
 * - src/gpu/wgsl.ts is what shaders/embed.ts generates from shaders/*.wgsl and shaders/common;
 * - the define pass and pipeline keys; the tuning profiles' constraints.
 * (The include pass is tested in shaders.test.ts.)
 */
import { readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { WGSL, WGSL_COMMON, type KernelName } from '../../src/gpu/wgsl.ts'
import { WGSL_MODULE, renderWgslModule } from '../../shaders/embed.ts'
import { kernelSource, preprocess, serializeKey } from '../../src/gpu/pipelines.ts'
import { CPU_TUNING, GPU_TUNING, MATMUL_ROWS_PER_THREAD, MATMUL_TOKENS_PER_THREAD, attentionWorkgroup, tuningFor } from '../../src/gpu/tuning.ts'
import type { ParamFields } from '../../src/gpu/kernels/_params.ts'
import { ADD_PARAMS, packAddParams } from '../../src/gpu/kernels/add.ts'
import { ATTENTION_PARAMS, packAttentionParams } from '../../src/gpu/kernels/attention.ts'
import { EMBEDDING_PARAMS, packEmbeddingParams } from '../../src/gpu/kernels/embedding.ts'
import { MATMUL_PARAMS, packMatmulParams } from '../../src/gpu/kernels/matmul.ts'
import { MATVEC_PARAMS, packMatvecParams } from '../../src/gpu/kernels/matvec.ts'
import { MOE_DOWN_PARAMS, packMoeDownParams } from '../../src/gpu/kernels/moe_down.ts'
import { MOE_GATE_UP_PARAMS, packMoeGateUpParams } from '../../src/gpu/kernels/moe_gate_up.ts'
import { RMSNORM_PARAMS, packRmsnormParams } from '../../src/gpu/kernels/rmsnorm.ts'
import { ROPE_PARAMS, packRopeParams } from '../../src/gpu/kernels/rope.ts'
import { NO_SLOT, ROUTE_BYTES, ROUTER_PARAMS, packRouterParams } from '../../src/gpu/kernels/router.ts'
import { SWIGLU_PARAMS, packSwigluParams } from '../../src/gpu/kernels/swiglu.ts'
// training kernels (src/train/webgpu-trainer.ts)
import { ADAMW_PARAMS, packAdamwParams } from '../../src/gpu/kernels/adamw.ts'
import { ATTENTION_BACKWARD_KV_PARAMS, packAttentionBackwardKvParams } from '../../src/gpu/kernels/attention_backward_kv.ts'
import { ATTENTION_BACKWARD_Q_PARAMS, packAttentionBackwardQParams } from '../../src/gpu/kernels/attention_backward_q.ts'
import { ATTENTION_TRAIN_PARAMS, packAttentionTrainParams } from '../../src/gpu/kernels/attention_train.ts'
import { CROSS_ENTROPY_PARAMS, packCrossEntropyParams } from '../../src/gpu/kernels/cross_entropy.ts'
import { MATMUL_DX_PARAMS, packMatmulDxParams } from '../../src/gpu/kernels/matmul_dx.ts'
import { MOE_COMBINE_PARAMS, packMoeCombineParams } from '../../src/gpu/kernels/moe_combine.ts'
import { MOE_DOWN_BACKWARD_PARAMS, packMoeDownBackwardParams } from '../../src/gpu/kernels/moe_down_backward.ts'
import { MOE_DOWN_TRAIN_PARAMS, packMoeDownTrainParams } from '../../src/gpu/kernels/moe_down_train.ts'
import { MOE_UP_BACKWARD_PARAMS, packMoeUpBackwardParams } from '../../src/gpu/kernels/moe_up_backward.ts'
import { MOE_UP_TRAIN_PARAMS, packMoeUpTrainParams } from '../../src/gpu/kernels/moe_up_train.ts'
import { RMSNORM_BACKWARD_PARAMS, packRmsnormBackwardParams } from '../../src/gpu/kernels/rmsnorm_backward.ts'
import { ROPE_BACKWARD_PARAMS, packRopeBackwardParams } from '../../src/gpu/kernels/rope_backward.ts'
import { ROUTER_BACKWARD_PARAMS, packRouterBackwardParams } from '../../src/gpu/kernels/router_backward.ts'
import { SIGMOID_GATE_BACKWARD_PARAMS, packSigmoidGateBackwardParams } from '../../src/gpu/kernels/sigmoid_gate_backward.ts'
import { SWIGLU_BACKWARD_PARAMS, packSwigluBackwardParams } from '../../src/gpu/kernels/swiglu_backward.ts'
import { WEIGHT_GRAD_PARAMS, packWeightGradParams } from '../../src/gpu/kernels/weight_grad.ts'

/** [name, type] of `struct <name> { ... }` in WGSL source (scalar fields only, as ours are). */
function parseStruct(source: string, name: string): [string, string][] {
  const m = new RegExp(`struct\\s+${name}\\s*\\{([^}]*)\\}`).exec(source)
  if (m === null) throw new Error(`no struct ${name}`)
  return (m[1] as string)
    .split('\n')
    .map((l) => l.replace(/\/\/.*$/, '').trim())
    .filter((l) => l !== '')
    .map((l) => {
      const f = /^(\w+)\s*:\s*(\w+)\s*,?$/.exec(l)
      if (f === null) throw new Error(`struct ${name}: cannot parse "${l}"`)
      return [f[1] as string, f[2] as string]
    })
}

/** WGSL uniform layout of a struct of 4-byte scalars: offsets 4i, size rounded up to 16. */
function layoutOf(fields: [string, string][]): { offsets: number[]; size: number } {
  for (const [n, t] of fields) if (t !== 'u32' && t !== 'f32' && t !== 'i32') throw new Error(`${n}: ${t} is not a 4-byte scalar`)
  return { offsets: fields.map((_, i) => 4 * i), size: Math.ceil((4 * fields.length) / 16) * 16 }
}

type Packer = (p: never) => Uint32Array
const PACKERS: [KernelName[], ParamFields, Packer][] = [
  [['matvec_int8', 'matvec_f32'], MATVEC_PARAMS, packMatvecParams as Packer],
  [['matmul'], MATMUL_PARAMS, packMatmulParams as Packer],
  [['rmsnorm'], RMSNORM_PARAMS, packRmsnormParams as Packer],
  [['rope'], ROPE_PARAMS, packRopeParams as Packer],
  [['attention'], ATTENTION_PARAMS, packAttentionParams as Packer],
  [['swiglu'], SWIGLU_PARAMS, packSwigluParams as Packer],
  [['router'], ROUTER_PARAMS, packRouterParams as Packer],
  [['moe_gate_up'], MOE_GATE_UP_PARAMS, packMoeGateUpParams as Packer],
  [['moe_down'], MOE_DOWN_PARAMS, packMoeDownParams as Packer],
  [['embedding'], EMBEDDING_PARAMS, packEmbeddingParams as Packer],
  [['add'], ADD_PARAMS, packAddParams as Packer],
  [['adamw'], ADAMW_PARAMS, packAdamwParams as Packer],
  [['attention_backward_kv'], ATTENTION_BACKWARD_KV_PARAMS, packAttentionBackwardKvParams as Packer],
  [['attention_backward_q'], ATTENTION_BACKWARD_Q_PARAMS, packAttentionBackwardQParams as Packer],
  [['attention_train'], ATTENTION_TRAIN_PARAMS, packAttentionTrainParams as Packer],
  [['cross_entropy'], CROSS_ENTROPY_PARAMS, packCrossEntropyParams as Packer],
  [['matmul_dx'], MATMUL_DX_PARAMS, packMatmulDxParams as Packer],
  [['moe_combine'], MOE_COMBINE_PARAMS, packMoeCombineParams as Packer],
  [['moe_down_backward'], MOE_DOWN_BACKWARD_PARAMS, packMoeDownBackwardParams as Packer],
  [['moe_down_train'], MOE_DOWN_TRAIN_PARAMS, packMoeDownTrainParams as Packer],
  [['moe_up_backward'], MOE_UP_BACKWARD_PARAMS, packMoeUpBackwardParams as Packer],
  [['moe_up_train'], MOE_UP_TRAIN_PARAMS, packMoeUpTrainParams as Packer],
  [['rmsnorm_backward'], RMSNORM_BACKWARD_PARAMS, packRmsnormBackwardParams as Packer],
  [['rope_backward'], ROPE_BACKWARD_PARAMS, packRopeBackwardParams as Packer],
  [['router_backward'], ROUTER_BACKWARD_PARAMS, packRouterBackwardParams as Packer],
  [['sigmoid_gate_backward'], SIGMOID_GATE_BACKWARD_PARAMS, packSigmoidGateBackwardParams as Packer],
  [['swiglu_backward'], SWIGLU_BACKWARD_PARAMS, packSwigluBackwardParams as Packer],
  [['weight_grad'], WEIGHT_GRAD_PARAMS, packWeightGradParams as Packer]
]

describe('kernel host layout', () => {
  test('every kernel has a packer', () => {
    assert.deepEqual(PACKERS.flatMap(([k]) => k).sort(), Object.keys(WGSL).sort())
  })

  for (const [kernels, fields, pack] of PACKERS) {
    test(`${kernels.join(' / ')}: Params packer matches the WGSL struct`, () => {
      for (const k of kernels) {
        const wgsl = parseStruct(WGSL[k], 'Params')
        assert.deepEqual(fields.map(([n, t]) => [n, t]), wgsl, `${k}: fields and types in order`)
        // Params is the last binding of group 0 and a uniform (bindings may come from included snippets)
        const bindings = [...kernelSource({ kernel: k }).matchAll(/@group\(0\) @binding\((\d+)\) var<(\w+)(?:, \w+)?> (\w+)/g)]
        const last = bindings.reduce((a, b) => (Number(b[1]) > Number(a[1]) ? b : a))
        assert.deepEqual([last[2], last[3]], ['uniform', 'params'], `${k}: params at the last binding`)
        const { offsets, size } = layoutOf(wgsl)
        const values = Object.fromEntries(fields.map(([n, t], i) => [n, t === 'f32' ? i + 0.5 : i + 1]))
        const packed = pack(values as never)
        assert.equal(packed.byteLength, size, `${k}: struct size`)
        const dv = new DataView(packed.buffer)
        fields.forEach(([n, t], i) => {
          const off = offsets[i] as number
          assert.equal(t === 'f32' ? dv.getFloat32(off, true) : dv.getUint32(off, true), values[n], `${k}.${n} at ${off}`)
        })
      }
    })
  }

  test('packers reject non-u32 values', () => {
    assert.throws(() => packSwigluParams({ cols: -1 }), RangeError)
    assert.throws(() => packSwigluParams({ cols: 1.5 }), RangeError)
    assert.throws(() => packSwigluParams({ cols: 2 ** 32 }), RangeError)
    assert.throws(() => packRmsnormParams({ n: 1, eps: Number.NaN, last_only: 0 }), TypeError)
  })

  test('Step and Route: one definition each (shaders/common), 16 and 12 bytes, NONE = NO_SLOT', () => {
    // no kernel declares its own: they #include step / route
    for (const k of Object.keys(WGSL) as KernelName[]) {
      assert.ok(!/^\s*(struct\s+(Step|Route)\b|const\s+NONE\b)/m.test(WGSL[k]), `${k} declares Step, Route or NONE itself`)
    }
    const step = parseStruct(WGSL_COMMON.step, 'Step')
    assert.deepEqual(step, [['pos', 'u32'], ['n_tokens', 'u32'], ['_pad0', 'u32'], ['_pad1', 'u32']])
    assert.equal(layoutOf(step).size, 16)
    const route = parseStruct(WGSL_COMMON.route, 'Route')
    assert.deepEqual(route, [['expert', 'u32'], ['slot', 'u32'], ['weight', 'f32']])
    // a storage array<Route> has a stride of 12: three 4-byte scalars, 4-byte aligned, no padding
    assert.equal(route.length * 4, ROUTE_BYTES)
    const none = /^const NONE: u32 = (0x[0-9a-f]+)u;$/m.exec(WGSL_COMMON.route)
    assert.ok(none !== null, 'const NONE in common/route.wgsl')
    assert.equal(Number(none[1]), NO_SLOT)
    // and every kernel that binds them gets them
    let uses = 0
    for (const k of Object.keys(WGSL) as KernelName[]) {
      const src = kernelSource({ kernel: k, defines: ['INT8'] })
      if (/var<uniform> step: Step;/.test(src)) {
        uses++
        assert.equal(src.match(/struct\s+Step\b/g)?.length, 1, k)
      }
      if (/array<Route>/.test(src)) assert.equal(src.match(/struct\s+Route\b/g)?.length, 1, k)
    }
    assert.ok(uses >= 8)
  })

  test('src/gpu/wgsl.ts is regenerated from shaders/*.wgsl and shaders/common/*.wgsl (npm run shaders)', () => {
    assert.equal(readFileSync(WGSL_MODULE, 'utf8'), renderWgslModule(), 'run `npm run shaders` and commit src/gpu/wgsl.ts')
  })

  test('define pass: nested #if/#else/#endif, errors', () => {
    const src = ['a', '#if X', 'b', '#if Y', 'c', '#else', 'd', '#endif', '#else', 'e', '#endif', 'f'].join('\n')
    assert.equal(preprocess(src, new Set()), 'a\ne\nf')
    assert.equal(preprocess(src, new Set(['X'])), 'a\nb\nd\nf')
    assert.equal(preprocess(src, new Set(['X', 'Y'])), 'a\nb\nc\nf')
    assert.equal(preprocess(src, new Set(['Y'])), 'a\ne\nf')
    assert.throws(() => preprocess('#if X\na', new Set()), SyntaxError)
    assert.throws(() => preprocess('#endif', new Set()), SyntaxError)
    assert.throws(() => preprocess('#define X', new Set()), SyntaxError)
    // every kernel, every combination of the defines the keys use: no directive is left
    const names = ['INT8', 'PACKED', 'SUBGROUP', 'VEC4']
    for (const k of Object.keys(WGSL) as KernelName[]) {
      for (let mask = 0; mask < 1 << names.length; mask++) {
        const defines = names.filter((_, i) => (mask >> i) & 1)
        assert.ok(!/^\s*#/m.test(kernelSource({ kernel: k, defines })), `${k} ${defines.join(',')}`)
      }
    }
  })

  test('pipeline keys are order-independent', () => {
    assert.equal(serializeKey({ kernel: 'moe_down', defines: ['PACKED', 'INT8'], overrides: { WG: 64, TPR: 1 } }), 'moe_down|INT8,PACKED|TPR=1,WG=64')
    assert.equal(serializeKey({ kernel: 'moe_down', defines: ['INT8', 'PACKED'], overrides: { TPR: 1, WG: 64 } }), 'moe_down|INT8,PACKED|TPR=1,WG=64')
  })

  test('tuning profiles: powers of two, within WebGPU default limits', () => {
    const pow2 = (n: number): boolean => Number.isInteger(Math.log2(n))
    for (const t of [GPU_TUNING, CPU_TUNING]) {
      for (const [wg, tpr] of [[t.matvecWg, t.matvecThreadsPerRow], [t.moeWg, t.moeThreadsPerRow]] as const) {
        assert.ok(pow2(wg) && pow2(tpr) && wg % tpr === 0 && wg <= 256, `${t.name}: ${wg}/${tpr}`)
      }
      for (const wg of [t.normWg, t.attentionMinWg]) assert.ok(pow2(wg) && wg <= 256)
      assert.ok(t.elementwiseWg <= 256 && t.routerWg <= 256)
      assert.equal(t.matmulTileK % 4, 0)
      assert.equal(t.matmulTileT % MATMUL_TOKENS_PER_THREAD, 0)
      assert.ok((t.matmulTileT / MATMUL_TOKENS_PER_THREAD) * t.matmulRowLanes <= 256)
      // ws and xs: vec4s of the staged weights and inputs
      const shared = (t.matmulRowLanes * MATMUL_ROWS_PER_THREAD + t.matmulTileT) * (t.matmulTileK / 4) * 16
      assert.ok(shared <= 16384, `${t.name}: matmul needs ${shared} bytes of workgroup memory`)
      assert.equal(attentionWorkgroup(t, 2), t.attentionMinWg)
      assert.equal(attentionWorkgroup(t, 256), 256)
    }
    assert.equal(tuningFor({ architecture: 'swiftshader', isFallbackAdapter: false }), CPU_TUNING)
    assert.equal(tuningFor({ architecture: 'ampere', isFallbackAdapter: false }), GPU_TUNING)
    assert.equal(tuningFor(undefined), GPU_TUNING)
  })
})
