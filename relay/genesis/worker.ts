/**
 * Worker threads running this project's TypeScript: a worker does not inherit `node --import tsx`
 * (or tsx's CLI loader), so each one registers tsx before importing its entry module.
 *
 * @module
 */
import { Worker } from 'node:worker_threads'

export function startTsWorker(entry: URL, workerData: unknown): Worker {
  const tsx = import.meta.resolve('tsx/esm/api')
  const src = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry.href)}) })`
  return new Worker(src, { eval: true, workerData })
}
