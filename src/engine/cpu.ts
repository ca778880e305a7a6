/**
 * The CPU backend: the reference forward pass (src/model/forward.ts) on dequantized float32 weights.
 * Slow and exact: the oracle for the GPU and ORT backends, and what validators run.
 *
 * @module
 */
import { EMBEDDING_NAME, routerName } from '../chain/header.ts'
import type { Architecture } from '../chain/meta.ts'
import { RunState, forward, ropeTable, type ReferenceWeights } from '../model/forward.ts'
import { dequantizeAll, embeddingWeights, expertWeights, layerWeights, type EmbeddingWeights, type ExpertWeights, type LayerWeights } from '../model/weights.ts'
import type { Backend, BlockTensors, ForwardResult } from './interface.ts'

export class CpuBackend implements Backend {
  readonly name = 'cpu'
  readonly #arch: Architecture
  readonly #state: RunState
  readonly #table: { cos: Float32Array; sin: Float32Array }
  readonly #experts = new Map<string, ExpertWeights>()
  #embedding: EmbeddingWeights | null = null
  #layers: LayerWeights[] = []

  constructor(arch: Architecture) {
    this.#arch = arch
    this.#state = new RunState(arch)
    this.#table = ropeTable(arch)
  }

  async loadShared(blocks: ReadonlyMap<string, BlockTensors>): Promise<void> {
    const get = (name: string): BlockTensors => {
      const b = blocks.get(name)
      if (b === undefined) throw new Error(`cpu backend: no ${name} block`)
      return b
    }
    this.#embedding = embeddingWeights(dequantizeAll(get(EMBEDDING_NAME)))
    this.#layers = Array.from({ length: this.#arch.n_layers }, (_, l) => layerWeights(dequantizeAll(get(routerName(l)))))
  }

  async loadExpert(layer: number, expert: number, tensors: BlockTensors): Promise<void> {
    this.#experts.set(`${layer}.${expert}`, expertWeights(dequantizeAll(tensors)))
  }

  unloadExpert(layer: number, expert: number): void {
    this.#experts.delete(`${layer}.${expert}`)
  }

  async forward(token: number, pos: number): Promise<ForwardResult> {
    if (this.#embedding === null) throw new Error('cpu backend: loadShared first')
    const weights: ReferenceWeights = {
      embedding: this.#embedding,
      layers: this.#layers,
      expert: (l, e) => this.#experts.get(`${l}.${e}`)
    }
    const r = forward(this.#arch, weights, this.#state, this.#table, token, pos)
    if ('missing' in r) return r
    return { logits: r.logits.slice(), used: this.#state.used.map((u) => [...u]) }
  }

  reset(): void {
    this.#state.keyCache.fill(0)
    this.#state.valueCache.fill(0)
  }

  destroy(): void {
    this.#experts.clear()
    this.#embedding = null
    this.#layers = []
  }
}
