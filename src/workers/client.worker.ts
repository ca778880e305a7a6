/**
 * The client worker: the Client (src/client/client.ts) with the browser's pieces — a verify pool of Web
 * Workers sized from navigator.hardwareConcurrency, IndexedDB caches and settings, WebGPU or ONNX
 * Runtime Web — exposed to the page over comlink. It owns the WebGPU device, so the engine runs off
 * the main thread.
 *
 * @module
 */
import { expose } from 'comlink'
import { openCaches } from '../store/caches.ts'
import { loadSettings, loadSyncState, saveSettings, saveSyncState } from '../store/settings.ts'
import { createBrowserBackend } from './backends.ts'
import { Client } from '../client/client.ts'
import { workerPool } from './verify-pool.ts'
import { poolSize } from '../net/verify-pool.ts'

const pool = workerPool(poolSize(navigator.hardwareConcurrency), () => new Worker(new URL('./verify.worker.ts', import.meta.url), { type: 'module', name: 'blyan-verify' }))

const client = new Client({
  pool,
  openCaches: (budgetBytes) => openCaches({ budgetBytes }),
  settings: { load: () => loadSettings(), save: (s) => saveSettings(s), loadSync: () => loadSyncState(), saveSync: (s) => saveSyncState(s) },
  createBackend: createBrowserBackend,
  // A relay serves the site: its origin is the relay unless settings or ?relay= say otherwise.
  defaultRelays: [self.location.origin]
})

expose(client)
