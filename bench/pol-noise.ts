/**
 * How noisy is a PoL verdict? (issue 18, statistical power; a first measurement.) On a devnet of
 * the committed genesis: train two experts as a job's first attempt would (60 steps of 8 windows),
 * take each one's gain on the whole validation pool as its true gain, then the paired gain on 24
 * slices each of 16, 64 and 256 windows: mean, standard deviation, and how many slices pass delta.
 * Slices of one pool overlap, so the larger ones understate the noise. Not yet reproducible run to
 * run: the devnet's validator keys are random, so block CIDs, and with them each attempt's windows,
 * differ (fixed keys are the next step).
 *
 *   npx tsx bench/pol-noise.ts        (4-7 minutes on 2 cores)
 */
import type { CID } from 'multiformats/cid'
import type { DatasetDocument } from '../src/chain/dataset.ts'
import { poolsInForce } from '../src/chain/governance.ts'
import type { MetaDocument } from '../src/chain/meta.ts'
import type { AcceptedBlock } from '../src/chain/view.ts'
import { chainTokenizer } from '../src/model/source.ts'
import type { Tokenizer } from '../src/model/tokenizer/index.ts'
import { loadFloatModel, withExpert } from '../src/pol/float-model.ts'
import { attemptTerms } from '../src/pol/job.ts'
import { SequencePool } from '../src/pol/sequences.ts'
import { fetchUnixfsFile } from '../src/tensor/tiles.ts'
import { evaluatePair, trainExpert } from '../src/train/train.ts'
import { openExistingStore } from '../relay/devnet.ts'
import { genesisDevnet } from '../test/fixtures/genesis-devnet.ts'

const SLICES = [16, 64, 256] as const
const SAMPLES = 24
const KEY = '02' + '11'.repeat(32)

const store = openExistingStore(await genesisDevnet())
try {
  const head = store.head('A') as AcceptedBlock
  const meta = head.document as MetaDocument
  const arch = meta.architecture
  const get = async (cid: CID): Promise<Uint8Array> => store.getRaw(cid) as Uint8Array
  const refs = () => new Map([...store.paramIndex()].map(([n, b]) => [n, { name: n, cid: b.cid, payload: b.header.payload, payloadSize: b.header.payload_size }]))
  const tokenizer = await chainTokenizer(meta, get) as Tokenizer
  const text = async (split: 'train' | 'validation'): Promise<string> => {
    const doc = store.get(poolsInForce(store, head)[split][0] as CID)?.document as DatasetDocument
    return new TextDecoder().decode(await fetchUnixfsFile(doc.content, doc.content_size, get))
  }
  const train = SequencePool.fromText(await text('train'), tokenizer, meta.pol.seq_len)
  const validation = SequencePool.fromText(await text('validation'), tokenizer, meta.pol.seq_len)
  console.log(`validation pool: ${validation.size} windows of ${meta.pol.seq_len} tokens; delta ${meta.pol.delta}`)
  const base = await loadFloatModel(arch, refs(), get)
  for (const [layer, expert] of [[0, 2], [2, 5]] as const) {
    const name = `layer${layer}.expert${expert}`
    const { start, seed } = attemptTerms(store.paramIndex().get(name)?.cid as CID, KEY, 0)
    const trained = await trainExpert(await loadFloatModel(arch, refs(), get), { target: { layer, expert }, sequences: train.slice(start, 512), steps: 60, batchSize: 8, learningRate: 0.001, seed })
    const candidate = withExpert(base, { layer, expert }, trained.expert)
    const gain = (e: { lossBefore: number; lossAfter: number }): number => (e.lossBefore - e.lossAfter) / e.lossBefore
    console.log(`${name}: gain on the whole pool ${(100 * gain(await evaluatePair(base, candidate, layer, validation.slice(0, validation.size)))).toFixed(3)}%`)
    for (const n of SLICES) {
      const gains: number[] = []
      for (let k = 0; k < SAMPLES; k++) gains.push(gain(await evaluatePair(base, candidate, layer, validation.slice((k * 7919 * n) % validation.size, Math.min(n, validation.size)))))
      const mean = gains.reduce((a, x) => a + x, 0) / gains.length
      const sd = Math.sqrt(gains.reduce((a, x) => a + (x - mean) ** 2, 0) / (gains.length - 1))
      console.log(`  ${n} windows: mean ${(100 * mean).toFixed(3)}%, sd ${(100 * sd).toFixed(3)}%, ${gains.filter((g) => g >= meta.pol.delta).length}/${SAMPLES} pass delta`)
    }
  }
} finally {
  store.close()
}
