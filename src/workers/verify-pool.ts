/**
 * The verify pool over Web Workers: `size` workers each running verify.ts, a job going to the worker
 * with the fewest jobs in flight. Bytes are copied to the worker (structured clone), not transferred:
 * the caller keeps using them once they are verified.
 *
 * @module
 */
import { wrap, type Remote } from 'comlink'
import type { HeaderCheck, VerifyApi, VerifyPool } from '../net/verify-pool.ts'

export function workerPool(size: number, createWorker: () => Worker): VerifyPool {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`pool size: a positive integer, got ${size}`)
  const workers = Array.from({ length: size }, () => {
    const worker = createWorker()
    return { worker, api: wrap<VerifyApi>(worker), busy: 0 }
  })
  const run = async <T>(job: (api: Remote<VerifyApi>) => Promise<T>): Promise<T> => {
    let w = workers[0] as (typeof workers)[number]
    for (const x of workers) if (x.busy < w.busy) w = x
    w.busy++
    try {
      return await job(w.api)
    } finally {
      w.busy--
    }
  }
  return {
    size,
    sha256: (bytes) => run((api) => api.sha256(bytes)),
    checkHeaderProofs: (bytes, cid) => run(async (api): Promise<HeaderCheck> => (await api.checkHeaderProofs(bytes, cid)) as HeaderCheck),
    destroy() {
      for (const w of workers) w.worker.terminate()
    }
  }
}
