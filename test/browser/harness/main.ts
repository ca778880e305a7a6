/**
 * Browser harness for engine tests and benches (not part of the site): the same engine code as the
 * product, on the page's own WebGPU device or ONNX Runtime Web, with weights fetched from the relay
 * that served the page and verified block by block.
 */
import { CpuBackend } from '../../../src/engine/cpu.ts'
import { Engine } from '../../../src/engine/engine.ts'
import type { Backend } from '../../../src/engine/interface.ts'
import { OrtBackend } from '../../../src/engine/ort.ts'
import { createTileSource, sourcedFrom } from '../../../src/engine/tile-source.ts'
import { WebGpuBackend } from '../../../src/engine/webgpu.ts'
import { requestModelDevice } from '../../../src/gpu/device.ts'
import { Sampler } from '../../../src/model/sampler.ts'
import { createRelayClient, relayBlockGetter } from '../../../src/net/relay-client.ts'
import { MinerChain } from '../../../src/pol/chain.ts'
import type { Architecture } from '../../../src/chain/meta.ts'

export type HarnessBackend = 'cpu' | 'webgpu' | 'ort-wasm' | 'ort-webgpu'

async function createBackend(name: HarnessBackend, arch: Architecture): Promise<{ backend: Backend; info: string }> {
  if (name === 'cpu') return { backend: new CpuBackend(arch), info: 'cpu' }
  if (name === 'ort-wasm' || name === 'ort-webgpu') {
    const provider = name === 'ort-wasm' ? 'wasm' : 'webgpu'
    return { backend: await OrtBackend.create(arch, { provider }), info: `onnxruntime-web ${provider}` }
  }
  const adapter = await navigator.gpu?.requestAdapter()
  if (adapter === null || adapter === undefined) throw new Error('no WebGPU adapter')
  const maxResidentExperts = arch.n_layers * arch.n_experts
  const device = await requestModelDevice(adapter, arch, { maxResidentExperts })
  const backend = await WebGpuBackend.create(device, arch, { maxResidentExperts, wgslLanguageFeatures: new Set(navigator.gpu.wgslLanguageFeatures) })
  return { backend, info: `webgpu ${adapter.info.vendor} ${adapter.info.architecture}` }
}

export interface GenerateRequest {
  readonly backend: HarnessBackend
  readonly maxTokens: number
  /** Prompt token ids (default: BOS only). */
  readonly prompt?: number[]
  readonly keepLogits?: boolean
  /** WebGPU: compile every pipeline first (for int8 or f32 weights) and count pipelines after warm-up and after the run. */
  readonly warmUp?: { readonly int8: boolean }
}

async function generate(request: GenerateRequest): Promise<{ tokens: number[]; logits: number[][]; experts: string[]; info: string; bytes: number; seconds: number; pipelines: { warm: number; run: number } | null }> {
  const relay = createRelayClient(location.origin)
  const chain = new MinerChain(relay)
  await chain.sync()
  const model = chain.model()
  const tiles = createTileSource(sourcedFrom(relayBlockGetter(relay), relay.url))
  const { backend, info } = await createBackend(request.backend, model.architecture)
  let warm = 0
  if (request.warmUp !== undefined && backend instanceof WebGpuBackend) {
    await backend.warmUp(request.warmUp)
    warm = backend.pipelineCount
  }
  const engine = await Engine.create(model, backend, tiles)
  const logits: number[][] = []
  const started = performance.now()
  const g = await engine.generate(request.prompt ?? [1], {
    maxTokens: request.maxTokens,
    sampler: new Sampler(model.architecture.vocab_size),
    ...(request.keepLogits === true ? { onLogits: (l: Float32Array) => void logits.push(Array.from(l)) } : {})
  })
  const seconds = (performance.now() - started) / 1000
  const pipelines = request.warmUp !== undefined && backend instanceof WebGpuBackend ? { warm, run: backend.pipelineCount } : null
  engine.destroy()
  return { tokens: g.tokens, logits, experts: g.experts.map((e) => `${e.name}=${e.cid}`), info, bytes: tiles.stats.bytes, seconds, pipelines }
}

declare global {
  interface Window {
    blyan: { generate: typeof generate; ready: true }
  }
}

window.blyan = { generate, ready: true }
