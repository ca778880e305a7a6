/**
 * The dataset quality gate (src/pol/gate.ts) per MiB of proposed text, against hashing the same
 * bytes into tiles (importPayload: what proposing it costs anyway). The references are the committed
 * genesis pools (1.4 MB); the model is the genesis MoE. The gate's model check reads a fixed sample
 * (256 KiB, 16 windows), so the ratio falls as proposals grow; both sizes are printed.
 */
import { CID } from 'multiformats/cid'
import { DEFAULT_GATE } from '../src/chain/meta.ts'
import { RAW, cidOf } from '../src/codec/cbor.ts'
import { tokenizerOf } from '../src/model/tokenizer/index.ts'
import { dequantizeAll, readBlockTensors } from '../src/model/weights.ts'
import { runGate } from '../src/pol/gate.ts'
import { importPayload } from '../src/tensor/tiles.ts'
import { floatModel } from '../src/train/train.ts'
import { devnetParts, readGenesis } from '../relay/genesis/genesis.ts'
import { GENESIS_DIR } from '../test/fixtures/genesis-devnet.ts'
import { sharedData } from '../test/fixtures/shared-data.ts'
import { timeOf } from './measure.ts'

export async function run(): Promise<void> {
  const parts = devnetParts(await readGenesis(GENESIS_DIR))
  const arch = parts.model.architecture
  const tokenizer = tokenizerOf(parts.model.tokenizer as NonNullable<typeof parts.model.tokenizer>, arch.vocab_size)
  const model = floatModel(arch, new Map([...parts.model.payloads].map(([n, p]) => [n, dequantizeAll(readBlockTensors(n, arch, p))])))
  const references = parts.datasets.map((d) => ({ cid: cidOf(d.bytes, RAW), role: d.split, text: new TextDecoder().decode(d.bytes) }))
  // Fresh text where ../shared/data has it (the gate's normal case); else the genesis pools' own text.
  const source = sharedData('tinystories_train_slice.txt') ?? (parts.datasets[0]?.bytes as Uint8Array)
  const dataset = CID.parse('bafyreiabvbzyqyoyxhmftn5lsb72g7qgjw55gmfc6kawnb3f42o4kvose4')
  for (const mib of [1, 4]) {
    const want = mib * 1024 * 1024
    const content = new Uint8Array(want)
    for (let at = 0; at < want; at += source.length) content.set(source.subarray(0, Math.min(source.length, want - at)), at)
    const gate = await timeOf(() => runGate({ dataset, role: 'train', content, params: DEFAULT_GATE, references, tokenizer, model, seqLen: parts.pol.seq_len }), 1, 3)
    const hash = await timeOf(() => importPayload(content), 1, 3)
    console.log(`gate ${mib} MiB: ${(gate / mib).toFixed(2)} s per MiB, hashing into tiles ${(hash / mib).toFixed(3)} s per MiB: gate / tiles ${(gate / hash).toFixed(1)}x`)
  }
}
