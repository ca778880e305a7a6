/**
 * The miner worker: the wallet and donation runs (miner.ts) in a thread of their own, exposed to the
 * page over comlink. Training on the CPU reference is long, synchronous arithmetic between steps;
 * here it neither blocks the page nor the client worker's chat and sync.
 *
 * @module
 */
import { expose } from 'comlink'
import { Miner } from '../client/miner.ts'
import { adapterName, softwareRenderer } from '../gpu/adapter-kind.ts'
import { requestTrainingDevice } from '../gpu/device.ts'
import type { Trainer } from '../pol/mining.ts'

/** Cores, memory and the WebGPU adapter, as far as this browser tells. */
async function device(): Promise<{ cores: number | null; memoryGiB: number | null; gpu: string | null; softwareGpu: string | null }> {
  const nav = navigator as Navigator & { deviceMemory?: number }
  let gpu: string | null = null
  let softwareGpu: string | null = null
  try {
    const adapter = await nav.gpu?.requestAdapter()
    if (adapter !== null && adapter !== undefined) {
      gpu = adapterName(adapter.info)
      softwareGpu = softwareRenderer(adapter.info)
    }
  } catch {
    gpu = null
  }
  return { cores: typeof nav.hardwareConcurrency === 'number' ? nav.hardwareConcurrency : null, memoryGiB: typeof nav.deviceMemory === 'number' ? nav.deviceMemory : null, gpu, softwareGpu }
}

/** Training on this browser's WebGPU: one device for the worker's life, requested on first use. */
let trainingDevice: Promise<GPUDevice> | null = null
const webgpu: Trainer = async (model, options) => {
  trainingDevice ??= (async () => {
    const adapter = await (navigator as Navigator & { gpu?: GPU }).gpu?.requestAdapter()
    if (adapter === null || adapter === undefined) throw new Error('no WebGPU adapter in this browser')
    return requestTrainingDevice(adapter)
  })()
  const { trainExpertWebGpu } = await import('../train/webgpu-trainer.ts')
  return trainExpertWebGpu(await trainingDevice, model, options)
}

expose(new Miner({ device, trainers: { webgpu } }))
