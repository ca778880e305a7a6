/**
 * Auditing a training record (src/pol/audit.ts) against the training it replays, on the committed
 * genesis model: a job's training on the CPU reference (what the miner ran, hashing each step as the
 * miner does), then the audit of the record it produced. The ratio should be about 1: an audit is
 * the same training again, plus loading the named blocks and comparing.
 */
import { CID } from 'multiformats/cid'
import type { AcceptedBlock } from '../src/chain/view.ts'
import { chainModel, chainTokenizer } from '../src/model/source.ts'
import type { Tokenizer } from '../src/model/tokenizer/index.ts'
import { auditRecord } from '../src/pol/audit.ts'
import { TrainingRecorder } from '../src/pol/recorder.ts'
import { buildCandidate } from '../src/pol/candidate.ts'
import { loadFloatModel } from '../src/pol/float-model.ts'
import { SequencePool } from '../src/pol/sequences.ts'
import { fetchUnixfsFile, importPayload } from '../src/tensor/tiles.ts'
import { trainExpert } from '../src/train/train.ts'
import type { MetaDocument } from '../src/chain/meta.ts'
import type { DatasetDocument } from '../src/chain/dataset.ts'
import { poolsInForce } from '../src/chain/governance.ts'
import { randomSecretKey } from '../src/chain/keys.ts'
import { openExistingStore } from '../relay/devnet.ts'
import { genesisDevnet } from '../test/fixtures/genesis-devnet.ts'

export async function run(): Promise<void> {
  const store = openExistingStore(await genesisDevnet())
  try {
    const get = async (cid: CID): Promise<Uint8Array> => store.getRaw(cid) as Uint8Array
    const head = store.head('A') as AcceptedBlock
    const meta = head.document as MetaDocument
    const model = chainModel(store)
    if ('missing' in model) throw new Error(model.missing)
    const tokenizer = await chainTokenizer(meta, get) as Tokenizer
    const pool = store.get(poolsInForce(store, head).train[0] as CID) as AcceptedBlock
    const doc = pool.document as DatasetDocument
    const text = new TextDecoder().decode(await fetchUnixfsFile(doc.content, doc.content_size, get))
    const [start, count, steps, batchSize, seed, lr, expert] = [0, 64, 20, 4, 7, 0.002, 'layer0.expert1']
    const base = store.paramIndex().get(expert) as AcceptedBlock
    const router = store.paramIndex().get('layer0.router') as AcceptedBlock

    const t0 = performance.now()
    const floats = await loadFloatModel(meta.architecture, model.blocks, get)
    const sequences = SequencePool.fromText(text, tokenizer, meta.pol.seq_len).slice(start, count)
    const recorder = new TrainingRecorder({
      expert, base: base.cid, model: Object.fromEntries([...model.blocks].map(([n, r]) => [n, r.cid])), dataset: pool.cid,
      start, count, seq_len: meta.pol.seq_len, seed, attempt: 0, steps, batch_size: batchSize, learning_rate: lr
    }, 'cpu')
    const trained = await trainExpert(floats, {
      target: { layer: 0, expert: 1 }, sequences, steps, batchSize, learningRate: lr, seed, onStep: (_s, _l, w) => recorder.step(w)
    })
    const trainSeconds = (performance.now() - t0) / 1000
    const candidate = await buildCandidate({
      architecture: meta.architecture, layer: 0, expert: 1, weights: trained.expert, dtype: 'int8', rules: head.cid,
      base: { cid: base.cid, index: base.header.index }, router: { cid: router.cid, index: router.header.index }, difficulty: 0, timestamp: Date.now(), key: randomSecretKey()
    })
    const record = recorder.record(trained, candidate.sealed.header.payload)
    // The version as the chain would hold it: its header, its payload bytes served by CID.
    const payloadBlocks = new Map<string, Uint8Array>()
    for (const [k, v] of (await importPayload(candidate.payload)).blocks) payloadBlocks.set(k, v)
    const version = { cid: candidate.sealed.cid, header: candidate.sealed.header } as AcceptedBlock
    const t1 = performance.now()
    const result = await auditRecord({
      record, version, architecture: meta.architecture, lookup: (c) => store.get(c), tokenizer, datasetText: text,
      get: async (c) => payloadBlocks.get(c.toString()) ?? (store.getRaw(c) as Uint8Array)
    })
    const auditSeconds = (performance.now() - t1) / 1000
    console.log(`audit: ${steps} steps of ${expert}, training ${trainSeconds.toFixed(2)} s, audit ${auditSeconds.toFixed(2)} s (${result.pass ? 'passed' : `FAILED: ${result.detail}`}): audit / training ${(auditSeconds / trainSeconds).toFixed(2)}x`)
  } finally {
    store.close()
  }
}
