/**
 * Placeholder until the client worker lands: connects the page to src/workers/client.worker.ts.
 *
 * @module
 */
import type { ClientApi } from './api.ts'

export async function connectClient(): Promise<ClientApi> {
  throw new Error('client worker not built yet')
}
