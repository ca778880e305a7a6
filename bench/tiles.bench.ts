/**
 * Tile verification throughput: verifyTilePath over every tile of an ~8 MiB payload, against raw
 * WebCrypto SHA-256 over the same tile bytes in the same process. Verification hashes the leaf,
 * walks the root node (1.6 KiB for 32 links; hashed and decoded once, then matched byte for byte
 * against the remembered copy, see tiles.ts `verifiedNodes`) and checks offsets; the goal is a
 * ratio of at least 0.9. Runs are interleaved (raw, verify, raw, verify, ...) and each figure is
 * the median over the rounds, so clock drift and JIT warm-up hit both sides alike.
 *
 * `run()` is called by bench/index.ts; one console.log line per measurement.
 */
import { buildPayload } from '../src/tensor/payload.ts'
import { TILE_SIZE, extractTilePath, importPayload, tileCount, verifyTilePath, type TilePath } from '../src/tensor/tiles.ts'
import { median as med } from './measure.ts'

const PAYLOAD_BYTES = 8 << 20
const ROUNDS = 15
const PASSES = 4 // full passes over all tiles per timed run

export async function run(): Promise<void> {
  // An ~8 MiB payload of pseudo-random fp32 values (incompressible, no duplicate tiles).
  const cols = 1024
  const rows = Math.floor((PAYLOAD_BYTES - 4096) / 4 / cols)
  const values = new Float32Array(rows * cols)
  let x = 0x12345678
  for (let i = 0; i < values.length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    values[i] = (x >>> 0) / 2 ** 32 - 0.5
  }
  const payload = buildPayload([{ name: 'bench.w', values, shape: [rows, cols], dtype: 'fp32' }])
  const { cid, blocks } = await importPayload(payload)
  const getBlock = async (c: { toString(): string }) => blocks.get(c.toString())!
  const paths: TilePath[] = []
  for (let t = 0; t < tileCount(payload.length); t++) paths.push(await extractTilePath(cid, t, getBlock))
  const tiles = paths.map((p) => p.blocks[p.blocks.length - 1]!)
  const bytesPerPass = tiles.reduce((n, t) => n + t.length, 0)

  const raw = async () => {
    for (let p = 0; p < PASSES; p++) {
      for (const t of tiles) await crypto.subtle.digest('SHA-256', t as Uint8Array<ArrayBuffer>)
    }
  }
  const verify = async () => {
    for (let p = 0; p < PASSES; p++) {
      for (const path of paths) await verifyTilePath(cid, path)
    }
  }
  const time = async (fn: () => Promise<void>) => {
    const t0 = performance.now()
    await fn()
    return (PASSES * bytesPerPass) / 1e6 / ((performance.now() - t0) / 1000) // MB/s
  }

  for (let w = 0; w < 3; w++) {
    await raw() // warm-up: JIT, WebCrypto thread pool, the verified-node memo
    await verify()
  }
  const rawMBs: number[] = []
  const verifyMBs: number[] = []
  const ratios: number[] = []
  for (let r = 0; r < ROUNDS; r++) {
    const a = await time(raw)
    const b = await time(verify)
    rawMBs.push(a)
    verifyMBs.push(b)
    ratios.push(b / a)
  }
  const label = `tiles: ${paths.length} tiles of ${TILE_SIZE} B (${(payload.length / 2 ** 20).toFixed(1)} MiB payload, ${paths[0]!.blocks.length}-block paths), ${ROUNDS} rounds x ${PASSES} passes`
  console.log(`${label}: raw WebCrypto SHA-256 ${med(rawMBs).toFixed(0)} MB/s (median)`)
  console.log(`${label}: verifyTilePath ${med(verifyMBs).toFixed(0)} MB/s (median)`)
  console.log(`${label}: verifyTilePath / raw SHA-256 = ${med(ratios).toFixed(3)} (median of per-round ratios, goal >= 0.9)`)
}
