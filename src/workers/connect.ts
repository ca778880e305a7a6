/**
 * The page's side of the client worker: starts src/workers/client.worker.ts and returns a ClientApi
 * whose callbacks are wrapped for comlink, so the UI passes plain functions.
 *
 * @module
 */
import { proxy, wrap } from 'comlink'
import type { ClientApi } from './api.ts'

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
    chat: (prompt, sampling, onEvent) => remote.chat(prompt, sampling, proxy(onEvent)),
    prepareChat: () => remote.prepareChat(),
    stop: () => remote.stop(),
    listBlocks: (chain, limit, before) => remote.listBlocks(chain, limit, before),
    search: (query) => remote.search(query),
    block: (cid) => remote.block(cid),
    dag: () => remote.dag(),
    verify: (cid, tile, onStep) => remote.verify(cid, tile, onStep === undefined ? undefined : proxy(onStep)),
    clearCache: () => remote.clearCache()
  }
}
