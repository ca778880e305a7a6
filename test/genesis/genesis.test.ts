/**
 * The genesis: the committed genesis/ directory is sound and its record honest (recomputed here
 * from the chain's own payloads), and `npm run genesis` is reproducible (a miniature recipe run
 * twice gives byte-identical files), loads into a devnet that verifies, and refuses a damaged CAR
 * or an edited manifest.
 */
import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { GENESIS_RECIPE, type GenesisRecipe } from '../../relay/genesis/config.ts'
import { chainModel, expertUsage } from '../../relay/genesis/evaluate.ts'
import { GENESIS_CAR, GENESIS_MANIFEST, GenesisError, devnetParts, readGenesis } from '../../relay/genesis/genesis.ts'
import { corpusStage, loadTeacher, poolSequences, studentStage, writeStage } from '../../relay/genesis/pipeline.ts'
import { main } from '../../relay/cli.ts'
import { createTokenizer } from '../../src/model/tokenizer/index.ts'
import { evaluateLoss, floatModel } from '../../src/train/train.ts'
import { dequantizeAll, readBlockTensors } from '../../src/model/weights.ts'
import { splitDocuments } from '../../src/pol/sequences.ts'
import { SHARED_DATA_MISSING, sharedData, sharedPath } from '../fixtures/shared-data.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const GENESIS = join(ROOT, 'genesis')
const work = mkdtempSync(join(tmpdir(), 'blyan-genesis-'))
after(() => rmSync(work, { recursive: true, force: true }))

/** Quiet `blyan` commands. */
async function blyan(args: string[]): Promise<number> {
  const log = console.log
  console.log = () => undefined
  try {
    return await main(args)
  } finally {
    console.log = log
  }
}

describe('the committed genesis/', () => {
  test('a real MoE (8 experts per layer, top-2) in at most 10 MB, every file matching its CID', async () => {
    const g = await readGenesis(GENESIS)
    const a = g.manifest.architecture
    assert.equal(a.n_experts, 8)
    assert.equal(a.top_k, 2)
    const bytes = statSync(join(GENESIS, GENESIS_CAR)).size + statSync(join(GENESIS, GENESIS_MANIFEST)).size
    assert.ok(bytes <= 10 * 1024 * 1024, `${bytes} bytes`)
    assert.deepEqual(g.manifest.summary, g.record, 'the manifest shows the record it links')
    assert.deepEqual(g.record.model.blocks, g.manifest.blocks.map((b) => ({ name: b.name, cid: b.cid })))
    assert.deepEqual(g.record.datasets, g.manifest.datasets)
    assert.equal(g.record.recipe && (g.record.recipe as GenesisRecipe).network, g.manifest.network)
  })

  test('its record is honest: held-out loss and per-layer expert usage recomputed from the chain payloads; no expert under a quarter of its uniform share', async () => {
    const g = await readGenesis(GENESIS)
    const { model } = devnetParts(g)
    const arch = model.architecture
    const blocks = new Map([...model.payloads].map(([name, bytes]) => [name, dequantizeAll(readBlockTensors(name, arch, bytes))]))
    const student = floatModel(arch, blocks)
    const tok = g.manifest.tokenizer
    const tokenizer = createTokenizer('llama2c', g.file(tok.cid), arch.vocab_size, tok.bos_id, tok.eos_id)
    const validation = g.manifest.datasets.find((d) => d.split === 'validation')
    assert.ok(validation !== undefined)
    const recipe = g.record.recipe as GenesisRecipe
    const stories = splitDocuments(new TextDecoder().decode(g.file(validation.cid))).slice(0, recipe.evaluationStories)
    const sequences = poolSequences(tokenizer, stories, arch.max_seq_len)
    const e = g.record.evaluation
    assert.equal(await evaluateLoss(student, sequences), e.heldout.student_chain, 'held-out loss of the chain model, bit for bit')
    const usage = expertUsage(student, sequences)
    usage.forEach((layer, l) => layer.forEach((share, x) => assert.ok(Math.abs(share - (e.expert_usage[l]?.[x] as number)) <= 1e-6, `layer ${l} expert ${x}`)))
    const least = Math.min(...usage.flat()) * arch.n_experts
    assert.ok(least >= 0.25, `the least-used expert gets ${least.toFixed(3)} of its uniform share`)
    const curve = g.record.training.loss_curve
    assert.ok((curve.at(-1)?.[1] as number) < (curve[0]?.[1] as number) / 2, 'training lowered the loss')
    assert.ok(e.heldout.student_chain < 2.5, `the student learned the stories: ${e.heldout.student_chain} nats/token`)
  })
})

describe('npm run genesis', { skip: sharedData('stories260K.bin') === null ? SHARED_DATA_MISSING : false }, () => {
  /** A miniature recipe: the same pipeline, seconds instead of an hour. */
  const recipe: GenesisRecipe = {
    ...GENESIS_RECIPE,
    corpus: { ...GENESIS_RECIPE.corpus, stories: 10, maxTokens: 48, validationFraction: 0.4 },
    student: {
      ...GENESIS_RECIPE.student,
      architecture: { ...GENESIS_RECIPE.student.architecture, dim: 16, n_layers: 2, n_heads: 2, n_kv_heads: 1, head_dim: 8, max_seq_len: 64, expert_hidden_dim: 16 },
      steps: 3, batchSize: 3, warmupSteps: 1
    },
    evaluationStories: 2
  }

  async function run(name: string): Promise<string> {
    const teacher = loadTeacher(sharedPath('stories260K.bin'), sharedPath('tok512.bin'))
    const cache = join(work, `${name}-cache`)
    const out = join(work, name)
    const corpus = await corpusStage(teacher, recipe, 2, cache, () => undefined)
    const student = await studentStage(teacher, recipe, corpus, cache, () => undefined)
    await writeStage(teacher, recipe, corpus.corpus, student, { outDir: out, tinystories: readFileSync(sharedPath('tinystories_val_slice.txt'), 'utf8'), corpusSeconds: null, root: ROOT }, () => undefined)
    return out
  }

  test('the same recipe twice: the same CIDs and byte-identical files; the genesis loads into a devnet that verifies', async () => {
    const [a, b] = [await run('a'), await run('b')]
    const ga = await readGenesis(a)
    const gb = await readGenesis(b)
    assert.deepEqual(gb.manifest.blocks, ga.manifest.blocks)
    assert.deepEqual(gb.manifest.datasets, ga.manifest.datasets)
    assert.equal(gb.manifest.record.cid, ga.manifest.record.cid)
    assert.ok(readFileSync(join(a, GENESIS_CAR)).equals(readFileSync(join(b, GENESIS_CAR))))
    assert.equal(ga.record.training.steps, 3)
    assert.ok(ga.record.evaluation.tinystories !== null && ga.record.evaluation.heldout.teacher < ga.record.evaluation.heldout.student)

    const data = join(work, 'devnet')
    assert.equal(await blyan(['init', '--data', data, '--genesis', a]), 0)
    assert.equal(await blyan(['verify', '--data', data]), 0)
  })

  test('a damaged CAR or an edited manifest is refused with a GenesisError', async () => {
    const source = join(work, 'a')
    const bad = join(work, 'bad')
    mkdirSync(bad, { recursive: true })
    const car = readFileSync(join(source, GENESIS_CAR))
    const manifest = readFileSync(join(source, GENESIS_MANIFEST), 'utf8')
    // one flipped byte near the end (inside a block's data)
    const damaged = Buffer.from(car)
    damaged[damaged.length - 10] = (damaged[damaged.length - 10] as number) ^ 0xff
    writeFileSync(join(bad, GENESIS_CAR), damaged)
    writeFileSync(join(bad, GENESIS_MANIFEST), manifest)
    await assert.rejects(readGenesis(bad), (e: unknown) => e instanceof GenesisError && /does not match its CID/.test(e.message))
    // a manifest that lies about a size
    const m = JSON.parse(manifest) as { datasets: { size: number }[] }
    ;(m.datasets[0] as { size: number }).size += 1
    writeFileSync(join(bad, GENESIS_CAR), car)
    writeFileSync(join(bad, GENESIS_MANIFEST), JSON.stringify(m))
    await assert.rejects(readGenesis(bad), (e: unknown) => e instanceof GenesisError && /the manifest says/.test(e.message))
    // no genesis at all
    await assert.rejects(readGenesis(join(work, 'nowhere')), (e: unknown) => e instanceof GenesisError && /npm run genesis/.test(e.message))
  })
})
