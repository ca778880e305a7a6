/**
 * Compute pipelines, compiled once per (device, key) and cached, as ggml-webgpu's
 * `get_*_pipeline()` does. A key is the kernel name, its `#if` defines and its `override`
 * constants, serialised in a fixed order.
 *
 * The define pass is deliberately tiny: lines `#if NAME`, `#else`, `#endif` (nestable) select
 * code; nothing else is rewritten. It exists for what `override` cannot express: bindings and
 * built-ins that only some variants have (int8 vs float32 weights, unpack4xI8 vs shifts).
 *
 * @module
 */
import { WGSL, type KernelName } from './wgsl.ts'

/** A pipeline variant. */
export interface PipelineKey {
  readonly kernel: KernelName
  /** Names tested by `#if` lines. */
  readonly defines?: readonly string[]
  /** WGSL `override` constants. */
  readonly overrides?: Readonly<Record<string, number>>
}

/** `kernel|DEF,DEF|NAME=value,...` with defines and overrides sorted. */
export function serializeKey(key: PipelineKey): string {
  const defines = [...(key.defines ?? [])].sort().join(',')
  const overrides = Object.entries(key.overrides ?? {})
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join(',')
  return `${key.kernel}|${defines}|${overrides}`
}

/** Keep the lines whose enclosing `#if` conditions hold for `defines`; drop the directive lines. */
export function preprocess(source: string, defines: ReadonlySet<string>): string {
  const out: string[] = []
  // Each open #if: whether its current branch is taken, and whether the enclosing code is.
  const stack: { taken: boolean; outer: boolean }[] = []
  const active = (): boolean => stack.every((s) => s.taken)
  source.split('\n').forEach((line, i) => {
    const d = /^\s*#(if|else|endif)\b\s*(\w*)\s*$/.exec(line)
    if (d === null) {
      if (/^\s*#/.test(line)) throw new SyntaxError(`line ${i + 1}: unknown directive "${line.trim()}"`)
      if (active()) out.push(line)
      return
    }
    if (d[1] === 'if') {
      if (d[2] === '') throw new SyntaxError(`line ${i + 1}: #if needs a name`)
      stack.push({ taken: defines.has(d[2] as string), outer: active() })
    } else {
      const top = stack[stack.length - 1]
      if (top === undefined) throw new SyntaxError(`line ${i + 1}: #${d[1]} without #if`)
      if (d[1] === 'else') top.taken = !top.taken
      else stack.pop()
    }
  })
  if (stack.length > 0) throw new SyntaxError('#if without #endif')
  return out.join('\n')
}

/** The WGSL a key compiles. */
export function kernelSource(key: PipelineKey): string {
  return preprocess(WGSL[key.kernel], new Set(key.defines ?? []))
}

/** Pipelines of one device by serialised key. */
export class PipelineCache {
  readonly device: GPUDevice
  readonly #pipelines = new Map<string, Promise<GPUComputePipeline>>()

  constructor(device: GPUDevice) {
    this.device = device
  }

  get size(): number {
    return this.#pipelines.size
  }

  /** The pipeline for `key`, compiled on first use (shader errors reject with the compiler's messages). */
  get(key: PipelineKey): Promise<GPUComputePipeline> {
    const id = serializeKey(key)
    let p = this.#pipelines.get(id)
    if (p === undefined) {
      p = this.#compile(id, key)
      this.#pipelines.set(id, p)
      p.catch(() => this.#pipelines.delete(id))
    }
    return p
  }

  async #compile(id: string, key: PipelineKey): Promise<GPUComputePipeline> {
    const module = this.device.createShaderModule({ label: id, code: kernelSource(key) })
    const info = await module.getCompilationInfo()
    const errors = info.messages.filter((m) => m.type === 'error')
    if (errors.length > 0) throw new Error(`WGSL ${id}: ${errors.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('; ')}`)
    return this.device.createComputePipelineAsync({
      label: id,
      layout: 'auto',
      compute: { module, entryPoint: 'main', ...(key.overrides === undefined ? {} : { constants: { ...key.overrides } }) }
    })
  }
}

const caches = new WeakMap<GPUDevice, PipelineCache>()

/** The device's pipeline cache (shared by every backend on that device). */
export function pipelineCache(device: GPUDevice): PipelineCache {
  let c = caches.get(device)
  if (c === undefined) {
    c = new PipelineCache(device)
    caches.set(device, c)
  }
  return c
}
