/**
 * Is a WebGPU adapter a real GPU, or a renderer that runs on the CPU (SwiftShader, llvmpipe,
 * lavapipe, WARP)? A software adapter is often slower than running the model on the CPU directly,
 * so the page names it and measures before it prefers it.
 *
 * @module
 */

/** The GPUAdapterInfo fields read here (all optional: browsers fill them unevenly). */
export interface AdapterInfoLike {
  readonly vendor?: string
  readonly architecture?: string
  readonly device?: string
  readonly description?: string
  /** The spec's own flag, where the browser sets it. */
  readonly isFallbackAdapter?: boolean
}

const SOFTWARE: readonly (readonly [RegExp, string])[] = [
  [/swiftshader/i, 'SwiftShader'],
  [/llvmpipe/i, 'llvmpipe'],
  [/lavapipe/i, 'lavapipe'],
  [/\bwarp\b|microsoft basic render/i, 'WARP'],
  [/softpipe/i, 'softpipe']
]

/** The software renderer's name when the adapter is one (`SwiftShader`), else null. */
export function softwareRenderer(info: AdapterInfoLike): string | null {
  const text = [info.vendor, info.architecture, info.device, info.description].filter((s) => s !== undefined && s !== '').join(' ')
  for (const [pattern, name] of SOFTWARE) if (pattern.test(text)) return name
  return info.isFallbackAdapter === true ? 'a fallback (software) adapter' : null
}

/** `google swiftshader`: vendor and architecture, as the page names an adapter. */
export function adapterName(info: AdapterInfoLike): string {
  return [info.vendor, info.architecture].filter((s) => s !== undefined && s !== '').join(' ') || 'WebGPU adapter'
}
