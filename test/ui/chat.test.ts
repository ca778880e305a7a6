import { test } from 'node:test'
import assert from 'node:assert/strict'
import { DEFAULT_SAMPLING, type ChatResult } from '../../src/client/api.ts'
import { applyChatEvent, backendLabel, finishTurn, newTurn, samplingSummary } from '../../src/ui/chat.ts'

const backend = { name: 'webgpu', detail: 'WebGPU swiftshader', fallback: null } as const

function result(text: string): ChatResult {
  return {
    text, seed: 7, tokens: [1, 2], experts: [], backend, finish: 'end',
    context: { window: 256, promptTokens: 3, usedExchanges: 0, droppedExchanges: 0, trimmedTokens: 0, promptLength: 2, maxTokens: 128, byteTokens: 0 },
    stats: { promptTokens: 1, generatedTokens: 2, tokensPerSecond: 10, firstTokenMs: 5, setup: { backendMs: 0, sharedMs: 0 }, fetchedTiles: 0, fetchedBytes: 0, cachedTiles: 0 }
  }
}

test('tokens stream into the answer; the result settles it', () => {
  const t = newTurn(1, 'Once', DEFAULT_SAMPLING)
  applyChatEvent(t, { type: 'backend', backend })
  applyChatEvent(t, { type: 'progress', progress: { phase: 'fetch', block: null, bytes: 1, tiles: 1, cachedTiles: 0, totalBytes: 2 } })
  applyChatEvent(t, { type: 'token', id: 5, text: ' upon' })
  applyChatEvent(t, { type: 'token', id: 6, text: ' a' })
  assert.equal(t.text, ' upon a')
  assert.equal(t.tokens, 2)
  assert.equal(t.progress?.bytes, 1)
  finishTurn(t, { ok: true, result: result(' upon a time') })
  assert.equal(t.status, 'done')
  assert.equal(t.text, ' upon a time')
  assert.equal(t.progress, null)
  // late events after the end change nothing
  applyChatEvent(t, { type: 'token', id: 7, text: 'x' })
  assert.equal(t.text, ' upon a time')
})

test('a refusal and a thrown error are kept apart', () => {
  const failed = newTurn(1, 'x', DEFAULT_SAMPLING)
  finishTurn(failed, { ok: false, failure: { code: 'E_LIED', message: 'no honest relay', expert: 'layer1.expert2', relays: ['http://bad'] } })
  assert.equal(failed.status, 'failed')
  assert.equal(failed.failure?.expert, 'layer1.expert2')
  const threw = newTurn(2, 'x', DEFAULT_SAMPLING)
  finishTurn(threw, { error: new Error('worker gone') })
  assert.equal(threw.status, 'error')
  assert.equal(threw.error, 'worker gone')
})

test('labels', () => {
  assert.equal(backendLabel('ort-wasm'), 'ORT WASM')
  assert.equal(samplingSummary({ temperature: 0, topP: 0.9, maxTokens: 64, seed: 1 }), 'temperature 0 (greedy) · top-p 0.9 · 64 tokens · seed 1')
})
