/**
 * The page's side of the workers: starts src/workers/client.worker.ts and returns a ClientApi, and
 * (on first use) src/workers/miner.worker.ts behind a MinerApi; callbacks are wrapped for comlink,
 * so the UI passes plain functions.
 *
 * @module
 */
import { proxy, wrap, type Remote } from 'comlink'
import type { ClientApi, MinerApi } from '../client/api.ts'

export async function connectClient(): Promise<ClientApi> {
  if (typeof Worker === 'undefined') throw new Error('this browser has no Web Workers, which Blyan needs to verify blocks off the page')
  const worker = new Worker(new URL('./client.worker.ts', import.meta.url), { type: 'module', name: 'blyan-client' })
  const remote = wrap<ClientApi>(worker)
  return {
    start: (overrides) => remote.start(overrides),
    status: () => remote.status(),
    onStatus: (listener) => remote.onStatus(proxy(listener)),
    onBlock: (listener) => remote.onBlock(proxy(listener)),
    settings: () => remote.settings(),
    updateSettings: (patch) => remote.updateSettings(patch),
    chat: (request, onEvent) => remote.chat(request, proxy(onEvent)),
    modelCard: () => remote.modelCard(),
    prepareChat: () => remote.prepareChat(),
    stop: () => remote.stop(),
    listBlocks: (chain, limit, before) => remote.listBlocks(chain, limit, before),
    search: (query) => remote.search(query),
    block: (cid) => remote.block(cid),
    rejections: (limit) => remote.rejections(limit),
    rejectionOf: (cid) => remote.rejectionOf(cid),
    datasetRecord: (cid) => remote.datasetRecord(cid),
    currentExperts: () => remote.currentExperts(),
    dag: () => remote.dag(),
    network: () => remote.network(),
    provenance: (cid) => remote.provenance(cid),
    verify: (cid, tile, onStep) => remote.verify(cid, tile, onStep === undefined ? undefined : proxy(onStep)),
    audit: (cid, onStep) => remote.audit(cid, onStep === undefined ? undefined : proxy(onStep)),
    clearCache: () => remote.clearCache()
  }
}

/**
 * The miner worker, started on the first call (a page that never opens Wallet or Donate and has no
 * run to resume still starts it once, to ask).
 */
export function connectMiner(): MinerApi {
  let remote: Remote<MinerApi> | null = null
  const m = (): Remote<MinerApi> => {
    if (remote === null) {
      if (typeof Worker === 'undefined') throw new Error('this browser has no Web Workers, which mining needs')
      remote = wrap<MinerApi>(new Worker(new URL('./miner.worker.ts', import.meta.url), { type: 'module', name: 'blyan-miner' }))
    }
    return remote
  }
  return {
    wallet: () => m().wallet(),
    createWallet: () => m().createWallet(),
    importWallet: (secretKey, replace) => m().importWallet(secretKey, replace),
    exportWallet: () => m().exportWallet(),
    forgetWallet: () => m().forgetWallet(),
    activity: (relay) => m().activity(relay),
    datasets: (relay) => m().datasets(relay),
    proposeDataset: (relay, proposal) => m().proposeDataset(relay, proposal),
    device: (architecture) => m().device(architecture),
    donateState: () => m().donateState(),
    onDonate: (listener) => m().onDonate(proxy(listener)),
    resume: () => m().resume(),
    startDonating: (options) => m().startDonating(options),
    stopDonating: () => m().stopDonating()
  }
}
