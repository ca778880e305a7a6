/**
 * Devnets from real models, end to end through the CLI: `blyan init` from stories260K (4 experts per
 * layer, int8) starts, `blyan verify` passes, a Helia node using only the trustless-gateway broker
 * fetches and verifies every block reachable from the chain heads, an export CAR reads back with
 * @ipld/car with every CID recomputing and imports into an identical store. Weights survive import:
 * every stored tensor dequantizes to the imported model's values within int8 error (exactly with
 * --dtype f32), for stories260K and generated Mixtral, OLMoE and Qwen2-MoE checkpoints.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { CarReader } from '@ipld/car'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { MAX_PARAM_PAYLOAD_BYTES } from '../../src/chain/header.ts'
import type { MetaDocument } from '../../src/chain/meta.ts'
import type { ImportedModel } from '../../src/model/imported.ts'
import { parsePayload } from '../../src/tensor/payload.ts'
import { dequantize } from '../../src/tensor/tensorblock.ts'
import { readUnixfsFile } from '../../src/tensor/tiles.ts'
import { main } from '../../relay/cli.ts'
import { serve } from '../../relay/serve.ts'
import { openExistingStore } from '../../relay/devnet.ts'
import { importModel } from '../../relay/import.ts'
import type { ChainStore } from '../../relay/node/interface.ts'
import { linksOf } from '../../relay/node/ipld.ts'
import { createGatewayHelia, heliaGet } from '../fixtures/helia.ts'
import { writeHfCheckpoint } from '../fixtures/hf.ts'
import { SHARED_DATA_MISSING, sharedData, sharedPath } from '../fixtures/shared-data.ts'

const tmp = mkdtempSync(join(tmpdir(), 'blyan-devnet-'))
after(() => rmSync(tmp, { recursive: true, force: true }))

/** Run the CLI in this process, quietly; returns its exit code. */
async function blyan(...args: string[]): Promise<number> {
  const log = console.log
  console.log = () => undefined
  try {
    return await main(args)
  } finally {
    console.log = log
  }
}

/** Every stored tensor against the imported model: within int8 error, or exact for fp32. */
function assertWeightsSurvive(store: ChainStore, model: ImportedModel): number {
  let checked = 0
  for (const [name, entry] of store.paramIndex()) {
    const payload = readUnixfsFile(entry.header.payload, (c) => store.getRaw(c), MAX_PARAM_PAYLOAD_BYTES).bytes
    const parsed = parsePayload(payload)
    const source = model.blocks.get(name)
    assert.ok(source !== undefined, name)
    for (const tensor of source) {
      const view = parsed.tensors.get(tensor.name)
      assert.ok(view !== undefined, `${name}.${tensor.name}`)
      const values = dequantize(view)
      assert.equal(values.length, tensor.values.length)
      const cols = view.header.cols
      for (let i = 0; i < values.length; i++) {
        const want = tensor.values[i] as number
        const got = values[i] as number
        if (view.header.dtype === 'int8') {
          const scale = (view.scales as Float32Array)[Math.floor(i / cols)] as number
          // scale/2 is exact for q * scale; the float32 result adds at most half an ulp of |got|.
          assert.ok(Math.abs(got - want) <= scale / 2 + Math.abs(got) * 2 ** -24, `${name}.${tensor.name}[${i}]: ${got} vs ${want} (scale ${scale})`)
        } else {
          assert.equal(got, want, `${name}.${tensor.name}[${i}]`)
        }
      }
      checked++
    }
  }
  return checked
}

describe('a stories260K devnet (4 experts per layer, int8)', () => {
  const dir = join(tmp, 'stories')
  const ready = (async () => {
    if (sharedData('stories260K.bin') === null) return false
    const code = await blyan('init', '--data', dir, '--model', sharedPath('stories260K.bin'), '--tokenizer', sharedPath('tok512.bin'),
      '--experts', '4', '--dataset', `train=${sharedPath('tinystories_train_slice.txt')}`,
      '--dataset', `validation=${sharedPath('tinystories_val_slice.txt')}`, '--license', 'CDLA-Sharing-1.0')
    assert.equal(code, 0)
    return true
  })()

  test('blyan verify passes', async (t) => {
    if (!(await ready)) return t.skip(SHARED_DATA_MISSING)
    assert.equal(await blyan('verify', '--data', dir), 0)
  })

  test('a Helia node with only the trustless-gateway broker fetches and verifies every block reachable from the heads', async (t) => {
    if (!(await ready)) return t.skip(SHARED_DATA_MISSING)
    const served = await serve({ dataDir: dir, port: 0, host: '127.0.0.1', log: () => undefined })
    const helia = await createGatewayHelia(served.url)
    try {
      const status = (await (await fetch(`${served.url}api/status`)).json()) as { genesis: string; heads: Record<string, { cid: string } | null>; paramIndex: { entries: Record<string, string> } }
      const roots = [status.genesis, ...Object.values(status.heads).flatMap((h) => (h === null ? [] : [h.cid])), ...Object.values(status.paramIndex.entries)]
      const seen = new Set<string>()
      const stack = roots.map((r) => CID.parse(r))
      while (stack.length > 0) {
        const cid = stack.pop() as CID
        if (seen.has(cid.toString())) continue
        seen.add(cid.toString())
        const bytes = await heliaGet(helia, cid, AbortSignal.timeout(10_000))
        assert.ok(CID.createV1(cid.code, await sha256.digest(bytes)).equals(cid))
        stack.push(...linksOf(cid, bytes))
      }
      const store = served.node.store
      const stored = new Set<string>()
      for (const block of store.all()) for (const c of store.rawCidsOf(block.cid)) stored.add(c.toString())
      assert.deepEqual([...seen].sort(), [...stored].sort(), 'every stored block is reachable from the heads, and fetched')
      assert.ok(seen.size > 50, `${seen.size} blocks`)
    } finally {
      await helia.stop()
      await served.close()
    }
  })

  test('an export CAR reads back with @ipld/car, every CID recomputes, and it imports into an identical store', async (t) => {
    if (!(await ready)) return t.skip(SHARED_DATA_MISSING)
    const car = join(tmp, 'stories.car')
    assert.equal(await blyan('export', '--data', dir, '--car', car), 0)
    const reader = await CarReader.fromBytes(new Uint8Array(readFileSync(car)))
    let blocks = 0
    for await (const { cid, bytes } of reader.blocks()) {
      assert.ok(CID.createV1(cid.code, await sha256.digest(bytes)).equals(cid), `${cid}`)
      blocks++
    }
    const original = openExistingStore(dir)
    const roots = await reader.getRoots()
    const checkpoints = original.checkpoints(0, 1000)
    assert.ok(checkpoints.length >= 1, 'blyan init finalizes the genesis')
    assert.deepEqual(roots.map(String), [
      ...[...original.all()].map((b) => b.cid.toString()),
      ...(await Promise.all(checkpoints.map(async (c) => CID.createV1(0x71, await sha256.digest(c.bytes)).toString())))
    ], 'roots: every header in acceptance order, then every checkpoint')
    assert.equal(await blyan('import-car', '--data', join(tmp, 'copy'), '--car', car), 0)
    const copy = openExistingStore(join(tmp, 'copy'))
    assert.equal(copy.contentHash(), original.contentHash())
    assert.ok(blocks > roots.length)
    copy.close()
    original.close()
  })

  test('stored weights dequantize to the checkpoint values within int8 error', async (t) => {
    if (!(await ready)) return t.skip(SHARED_DATA_MISSING)
    const model = await importModel(sharedPath('stories260K.bin'), { experts: 4, tokenizer: sharedPath('tok512.bin') })
    const store = openExistingStore(dir)
    try {
      // embedding (tok_embeddings, norm: the classifier is tied) + 5 routers x 7 + 20 experts x 3
      assert.equal(assertWeightsSurvive(store, model), 2 + 5 * 7 + 5 * 4 * 3)
    } finally {
      store.close()
    }
  })

  test('with --dtype f32 they are exact', async (t) => {
    if (sharedData('stories260K.bin') === null) return t.skip(SHARED_DATA_MISSING)
    const f32 = join(tmp, 'stories-f32')
    assert.equal(await blyan('init', '--data', f32, '--model', sharedPath('stories260K.bin'), '--experts', '3', '--dtype', 'f32'), 0)
    const store = openExistingStore(f32)
    try {
      assertWeightsSurvive(store, await importModel(sharedPath('stories260K.bin'), { experts: 3 }))
    } finally {
      store.close()
    }
  })
})

describe('devnets from generated Hugging Face MoE checkpoints', () => {
  for (const family of ['mixtral', 'olmoe', 'qwen2_moe'] as const) {
    for (const dtype of ['int8', 'f32'] as const) {
      test(`${family}, ${dtype}: init, verify, weights survive`, async () => {
        const source = join(tmp, `${family}-src`)
        writeHfCheckpoint(source, family, { shards: family === 'mixtral' ? 2 : 1 })
        const dir = join(tmp, `${family}-${dtype}`)
        assert.equal(await blyan('init', '--data', dir, '--model', source, '--dtype', dtype, '--validators', '3'), 0)
        assert.equal(await blyan('verify', '--data', dir), 0)
        const store = openExistingStore(dir)
        try {
          const model = await importModel(source)
          assert.ok(assertWeightsSurvive(store, model) > 10)
          assert.equal((store.genesis()?.document as MetaDocument).validators.length, 3)
        } finally {
          store.close()
        }
      })
    }
  }
})
