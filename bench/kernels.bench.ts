/**
 * WebGPU backend speed: decode ms/token and prefill tokens/s on a synthetic int8 MoE model, with
 * the CPU backend measured in the same run as the baseline, plus the int8 GEMV's effective
 * bandwidth. On a software adapter (SwiftShader) the model is small: those numbers only show the
 * harness works; real numbers come from a hardware GPU.
 *
 * Measured 2026-11-26 on an NVIDIA H200 (Dawn over Vulkan, driver 580.159, GPU_TUNING), dim 2048,
 * 8 layers, 8 experts top 2, vocab 32000, int8, after the VEC4 GEMV and register-blocked GEMM:
 * decode 3.5-4.1 ms/token (114-133x the CPU backend), prefill of 64 tokens 16.5 ms (3900 tokens/s);
 * the GEMV against a copy kernel is in bench/gemv-node.bench.ts and bench/README.md.
 */
import type { Architecture } from '../src/chain/meta.ts'
import { CpuBackend } from '../src/engine/cpu.ts'
import { WebGpuBackend } from '../src/engine/webgpu.ts'
import { GpuContext, gpuFeatures } from '../src/gpu/context.ts'
import { requestModelDevice } from '../src/gpu/device.ts'
import { matvec } from '../src/gpu/kernels/matvec.ts'
import { nodeGpu } from '../src/gpu/node.ts'
import { tuningFor } from '../src/gpu/tuning.ts'
import { hostMatrix } from '../src/gpu/upload.ts'
import { decodeTensorBlock, encodeTensorBlock } from '../src/tensor/tensorblock.ts'
import { median } from './measure.ts'
import { BASE, decodeMs, describeArch, load, tensorsFor } from './synthetic.ts'

export async function run(): Promise<void> {
  const g = await nodeGpu()
  if (g === null) {
    console.log('no WebGPU adapter: skipped')
    return
  }
  const info = g.adapter.info
  const software = tuningFor(info).name === 'cpu'
  const arch: Architecture = Object.freeze(software
    ? { ...BASE, dim: 256, n_layers: 2, n_heads: 4, n_kv_heads: 2, vocab_size: 2048, expert_hidden_dim: 512 }
    : { ...BASE, dim: 2048, n_layers: 8, n_heads: 32, n_kv_heads: 8, vocab_size: 32000, expert_hidden_dim: 1024 })
  const slots = arch.n_layers * arch.n_experts
  const device = await requestModelDevice(g.adapter, arch, { maxResidentExperts: slots })
  console.log(`adapter: ${info.vendor} ${info.architecture} ${info.description} (${tuningFor(info).name} tuning)`)
  console.log(`model: ${describeArch(arch)}`)
  const t = tensorsFor(arch)

  const cpu = new CpuBackend(arch)
  await load(cpu, arch, t)
  const cpuMs = await decodeMs(cpu, 3, 1)
  cpu.destroy()

  const gpu = await WebGpuBackend.create(device, arch, { maxResidentExperts: slots, wgslLanguageFeatures: g.wgslLanguageFeatures })
  await load(gpu, arch, t)
  await decodeMs(gpu, 2, 1) // warm up
  const gpuMs = await decodeMs(gpu, software ? 4 : 32, 3)
  const prompt = Array.from({ length: gpu.prefillTokens }, (_, i) => (i * 13) % 100)
  const prefill: number[] = []
  for (let r = 0; r < 3; r++) {
    const s = performance.now()
    await gpu.prefill(prompt, 0)
    prefill.push(performance.now() - s)
  }
  const prefillMs = median(prefill)
  console.log(`CPU backend decode: ${cpuMs.toFixed(1)} ms/token (baseline)`)
  console.log(`WebGPU decode: ${gpuMs.toFixed(2)} ms/token, ${(cpuMs / gpuMs).toFixed(1)}x the CPU backend`)
  console.log(`WebGPU prefill of ${prompt.length} tokens: ${prefillMs.toFixed(1)} ms, ${((prompt.length / prefillMs) * 1000).toFixed(0)} tokens/s, ${((gpuMs * prompt.length) / prefillMs).toFixed(1)}x token by token`)
  gpu.destroy()

  // int8 GEMV alone: 20 dispatches per submit, effective weight bandwidth
  const n = software ? 1024 : 4096
  const ctx = new GpuContext(device, gpuFeatures(g.wgslLanguageFeatures, device), tuningFor(info))
  const h = hostMatrix(decodeTensorBlock(encodeTensorBlock(new Float32Array(n * n).fill(0.01), [n, n], 'int8')))
  const w = { ...h, weights: ctx.upload('w', h.data), scales: ctx.upload('s', h.scales as Float32Array) }
  const d = await matvec(ctx, 'gemv', w, ctx.storage('x', n * 4), ctx.storage('y', n * 4))
  const reps = 20
  const times: number[] = []
  for (let r = 0; r < 5; r++) {
    const s = performance.now()
    const enc = device.createCommandEncoder()
    const pass = enc.beginComputePass()
    for (let i = 0; i < reps; i++) {
      pass.setPipeline(d.pipeline)
      pass.setBindGroup(0, d.bindGroup)
      pass.dispatchWorkgroups(...d.decode)
    }
    pass.end()
    device.queue.submit([enc.finish()])
    await device.queue.onSubmittedWorkDone()
    times.push((performance.now() - s) / reps)
  }
  const gemvMs = median(times)
  console.log(`int8 GEMV ${n}x${n}: ${(gemvMs * 1000).toFixed(1)} µs, ${((n * n) / (gemvMs / 1000) / 1e9).toFixed(1)} GB/s of weights`)
  ctx.destroy()
  device.destroy()
}
