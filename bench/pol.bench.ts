/**
 * Proof-of-Learning costs on the real model (the PoL devnet of the tests: stories260K, 4 experts,
 * top-2, 3 validators): what one validator spends to judge a candidate (load the model, loss before
 * and after on the slice) against what the miner spent to produce it (the job's training on the CPU
 * reference, with the job board's default settings). Goal: at most 0.1.
 *
 * Both run here, on the same CPU, one after another, for three jobs (three layers).
 */
import { CID } from 'multiformats/cid'
import type { DatasetDocument } from '../src/chain/dataset.ts'
import type { MetaDocument } from '../src/chain/meta.ts'
import type { Tokenizer } from '../src/model/tokenizer/index.ts'
import { chainTokenizer } from '../src/model/source.ts'
import { evaluatePair, trainExpert } from '../src/train/train.ts'
import { DEFAULT_JOB_SETTINGS, attemptTerms } from '../src/pol/job.ts'
import { toHex } from '../src/codec/cbor.ts'
import { publicKeyOf, randomSecretKey } from '../src/chain/keys.ts'
import { loadFloatModel, withExpert } from '../src/pol/float-model.ts'
import { SequencePool } from '../src/pol/sequences.ts'
import { fetchUnixfsFile } from '../src/tensor/tiles.ts'
import { openExistingStore } from '../relay/devnet.ts'
import { deriveJobs } from '../relay/pol/jobs.ts'
import { poolsInForce } from '../src/chain/governance.ts'
import type { AcceptedBlock } from '../src/chain/view.ts'
import { polDevnet } from '../test/fixtures/pol-devnet.ts'
import { median } from './measure.ts'

/** Some miner's key: the windows and seed of its first attempt at each job. */
const MINER = toHex(publicKeyOf(randomSecretKey()))

export async function run(): Promise<void> {
  const dirP = polDevnet()
  if (dirP === null) return void console.log('skipped: ../shared/data/stories260K.bin is absent')
  const store = openExistingStore(await dirP)
  try {
    const meta = store.head('A')?.document as MetaDocument
    const arch = meta.architecture
    const get = async (cid: CID): Promise<Uint8Array> => store.getRaw(cid) as Uint8Array
    const refs = () => new Map([...store.paramIndex()].map(([n, b]) => [n, { name: n, cid: b.cid, payload: b.header.payload, payloadSize: b.header.payload_size }]))
    const tokenizer = await chainTokenizer(meta, get) as Tokenizer
    const text = async (split: DatasetDocument['split']): Promise<string> => {
      const pool = poolsInForce(store, store.head('A') as AcceptedBlock)[split][0]
      const doc = (pool === undefined ? undefined : store.get(pool))?.document as DatasetDocument
      return new TextDecoder().decode(await fetchUnixfsFile(doc.content, doc.content_size, get))
    }
    const train = SequencePool.fromText(await text('train'), tokenizer, meta.pol.seq_len)
    const validation = SequencePool.fromText(await text('validation'), tokenizer, meta.pol.seq_len)
    const s = DEFAULT_JOB_SETTINGS
    console.log(`job: ${s.steps} steps x ${s.batchSize} windows x ${meta.pol.seq_len} tokens (${s.steps * s.batchSize * meta.pol.seq_len} training tokens); slice: ${meta.pol.eval_sequences} windows (${meta.pol.eval_sequences * meta.pol.seq_len} tokens), evaluated twice`)
    const jobs = deriveJobs(store, () => ({ exclusive: null, shared: [] })).filter((j) => j.expertIndex === 1 && [0, 2, 4].includes(j.layer))
    const ratios: number[] = []
    for (const job of jobs) {
      let t0 = performance.now()
      const model = await loadFloatModel(arch, refs(), get)
      // A first attempt by some miner: its windows and seed (src/pol/job.ts attemptTerms).
      const { start, seed } = attemptTerms(CID.parse(job.base), MINER, 0)
      const trained = await trainExpert(model, { target: { layer: job.layer, expert: job.expertIndex }, sequences: train.slice(start, job.shard.count), steps: job.steps, batchSize: job.batchSize, learningRate: job.learningRate, seed })
      const minerMs = performance.now() - t0
      t0 = performance.now()
      const base = await loadFloatModel(arch, refs(), get)
      const slice = validation.slice(seed, meta.pol.eval_sequences)
      const { lossBefore: before, lossAfter: after } = await evaluatePair(base, withExpert(base, { layer: job.layer, expert: job.expertIndex }, trained.expert), job.layer, slice)
      const validatorMs = performance.now() - t0
      ratios.push(validatorMs / minerMs)
      console.log(`${job.expert}: miner ${(minerMs / 1000).toFixed(2)} s (training), one validator ${(validatorMs / 1000).toFixed(2)} s (model + loss before and after: ${before.toFixed(4)} -> ${after.toFixed(4)}); ratio ${(validatorMs / minerMs).toFixed(3)}`)
    }
    console.log(`validator / miner cost, median of ${ratios.length} jobs: ${median(ratios).toFixed(3)} (goal <= 0.1); with ${meta.validators.length} validators the network spends ${(median(ratios) * meta.validators.length).toFixed(2)} x the miner's compute`)
  } finally {
    store.close()
  }
}
