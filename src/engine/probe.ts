/**
 * A synthetic model with an architecture's real shapes (random int8 weights), handed straight to a
 * Backend, and the decode time per token it measures. The page's automatic backend choice times
 * the candidate backends with it (no chain, no network); the benches time kernels with it.
 *
 * @module
 */
import type { Architecture } from '../chain/meta.ts'
import { EMBEDDING_NAME, expertName, routerName } from '../chain/header.ts'
import { expectedTensors } from '../chain/params.ts'
import { readBlockTensors } from '../model/weights.ts'
import { buildPayload } from '../tensor/payload.ts'
import type { Backend, BlockTensors } from './interface.ts'

/** One random block per kind, reused for every layer and expert (shapes are all that matter here). */
export function syntheticTensors(arch: Architecture): Map<string, BlockTensors> {
  let seed = 1
  const rand = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5) * 0.2
  const block = (name: string): BlockTensors => readBlockTensors(name, arch, buildPayload(expectedTensors(name, arch).map((s) => {
    const values = new Float32Array(s.shape.reduce((a, b) => a * b, 1))
    for (let i = 0; i < values.length; i++) values[i] = rand()
    return { name: s.name, values, shape: s.shape, dtype: s.shape.length === 1 ? 'fp32' : 'int8' }
  })))
  const router = block(routerName(0))
  const expert = block(expertName(0, 0))
  const out = new Map<string, BlockTensors>([[EMBEDDING_NAME, block(EMBEDDING_NAME)]])
  for (let l = 0; l < arch.n_layers; l++) {
    out.set(routerName(l), router)
    for (let e = 0; e < arch.n_experts; e++) out.set(expertName(l, e), expert)
  }
  return out
}

/** Load the shared blocks and every expert of `t` (from syntheticTensors) into `b`. */
export async function loadSynthetic(b: Backend, arch: Architecture, t: Map<string, BlockTensors>): Promise<void> {
  await b.loadShared(new Map([EMBEDDING_NAME, ...Array.from({ length: arch.n_layers }, (_, l) => routerName(l))].map((n) => [n, t.get(n) as BlockTensors])))
  for (let l = 0; l < arch.n_layers; l++) for (let e = 0; e < arch.n_experts; e++) await b.loadExpert(l, e, t.get(expertName(l, e)) as BlockTensors)
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2
}

/** Median ms per token over `rounds` runs of `tokens` decode steps from position 0 (fixed token ids). */
export async function decodeMs(b: Backend, tokens: number, rounds: number): Promise<number> {
  const times: number[] = []
  for (let r = 0; r < rounds; r++) {
    b.reset()
    const t = performance.now()
    for (let pos = 0; pos < tokens; pos++) await b.forward((pos * 7) % 100, pos)
    times.push((performance.now() - t) / tokens)
  }
  return median(times)
}
