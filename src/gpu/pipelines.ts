/**
 * Compute pipelines, compiled once per (device, key) and cached, as ggml-webgpu's
 * `get_*_pipeline()` does. A key is the kernel name, its `#if` defines and its `override`
 * constants, serialised in a fixed order.
 *
 * A kernel's source goes through two small passes before it is compiled (kernelSource):
 * 1. includes: a line `#include name` (optionally followed by a `// comment`) is replaced by the
 *    shared snippet shaders/common/name.wgsl (WGSL_COMMON), whose own includes are expanded in
 *    turn. A snippet is included at most once per kernel (a second include, or a cycle, is an
 *    error rather than a silent skip, so an include inside an `#if` branch means what it says),
 *    and each file's `#if`s must close within that file.
 * 2. defines: lines `#if NAME`, `#else`, `#endif` (nestable) select code; nothing else is
 *    rewritten. It exists for what `override` cannot express: bindings and built-ins that only some
 *    variants have (int8 vs float32 weights, unpack4xI8 vs shifts). Included text may use it too.
 *
 * @module
 */
import { WGSL, WGSL_COMMON, type KernelName } from './wgsl.ts'

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

/** A source after its includes: its lines, and where each came from (`file:line`, outermost first). */
export interface ExpandedSource {
  readonly lines: readonly string[]
  readonly where: readonly string[]
}

const INCLUDE = /^\s*#include\b/
const INCLUDE_LINE = /^\s*#include\s+([a-z][a-z0-9_]*)\s*(?:\/\/.*)?$/
const CONDITION = /^\s*#(if|else|endif)\b/

/**
 * Replace every `#include name` line of kernel `kernel`'s `source` by `snippets[name]`, depth
 * first. Throws a SyntaxError naming the kernel file and line (and the include chain) for a
 * malformed include, an unknown name, a cycle, a snippet included twice, or an `#if` that does not
 * close in its own file.
 */
export function expandIncludes(
  kernel: string,
  source: string,
  snippets: Readonly<Record<string, string>> = WGSL_COMMON
): ExpandedSource {
  const lines: string[] = []
  const where: string[] = []
  const included = new Map<string, string>() // snippet -> where it was first included
  const expand = (file: string, text: string, chain: readonly string[], stack: readonly string[]): void => {
    const body = text.split('\n')
    if (stack.length > 0 && body[body.length - 1] === '') body.pop() // a snippet's final newline
    let depth = 0
    body.forEach((line, i) => {
      const at = [...chain, `${file}:${i + 1}`].join(' > ')
      const fail = (why: string): never => {
        throw new SyntaxError(`${at}: ${why}`)
      }
      const c = CONDITION.exec(line)
      if (c !== null) {
        if (c[1] === 'if') depth++
        else if (depth === 0) fail(`#${c[1]} without #if in this file`)
        else if (c[1] === 'endif') depth--
      }
      if (!INCLUDE.test(line)) {
        lines.push(line)
        where.push(at)
        return
      }
      const m = INCLUDE_LINE.exec(line)
      if (m === null) return fail(`malformed include "${line.trim()}": expected \`#include name\` (a file of shaders/common)`)
      const name = m[1] as string
      if (!Object.hasOwn(snippets, name)) return fail(`unknown snippet "${name}" (shaders/common has ${Object.keys(snippets).join(', ') || 'none'})`)
      if (stack.includes(name)) return fail(`include cycle ${[...stack, name].join(' > ')}`)
      const first = included.get(name)
      if (first !== undefined) return fail(`"${name}" is already included (at ${first}); a snippet is included once per kernel`)
      included.set(name, at)
      expand(`common/${name}.wgsl`, snippets[name] as string, [...chain, `${file}:${i + 1}`], [...stack, name])
    })
    if (depth > 0) throw new SyntaxError(`${[...chain, file].join(' > ')}: #if without #endif in this file`)
  }
  expand(`${kernel}.wgsl`, source, [], [])
  return { lines, where }
}

/**
 * Keep the lines whose enclosing `#if` conditions hold for `defines`; drop the directive lines.
 * `where` (from expandIncludes) names each line's file and line in errors; else `line N`.
 */
export function preprocess(source: string, defines: ReadonlySet<string>, where?: readonly string[]): string {
  const out: string[] = []
  // Each open #if: whether its current branch is taken, and whether the enclosing code is.
  const stack: { taken: boolean; outer: boolean }[] = []
  const active = (): boolean => stack.every((s) => s.taken)
  source.split('\n').forEach((line, i) => {
    const at = where?.[i] ?? `line ${i + 1}`
    const d = /^\s*#(if|else|endif)\b\s*(\w*)\s*$/.exec(line)
    if (d === null) {
      if (/^\s*#/.test(line)) throw new SyntaxError(`${at}: unknown directive "${line.trim()}"`)
      if (active()) out.push(line)
      return
    }
    if (d[1] === 'if') {
      if (d[2] === '') throw new SyntaxError(`${at}: #if needs a name`)
      stack.push({ taken: defines.has(d[2] as string), outer: active() })
    } else {
      const top = stack[stack.length - 1]
      if (top === undefined) throw new SyntaxError(`${at}: #${d[1]} without #if`)
      if (d[1] === 'else') top.taken = !top.taken
      else stack.pop()
    }
  })
  if (stack.length > 0) throw new SyntaxError('#if without #endif')
  return out.join('\n')
}

/** The WGSL a key compiles: the kernel with its includes expanded, then its defines applied. */
export function kernelSource(key: PipelineKey): string {
  const { lines, where } = expandIncludes(key.kernel, WGSL[key.kernel])
  return preprocess(lines.join('\n'), new Set(key.defines ?? []), where)
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
