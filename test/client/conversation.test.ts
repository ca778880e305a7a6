/**
 * The conversation the chat feeds the model (issue 17, problems 1 and 5), with the genesis chain's
 * own tokenizer: the window holds BOS, the newest exchanges that fit, the prompt and the answer; a
 * prompt longer than the window keeps its end; Max tokens is bounded by the window.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import { CarReader } from '@ipld/car'
import { CID } from 'multiformats/cid'
import { fitConversation, tidyAnswer } from '../../src/client/conversation.ts'
import { ConversationStore, MAX_CONVERSATIONS, conversationTitle } from '../../src/store/conversations.ts'
import { contextNotices, continuesPrompt, historyOf, newTurn, promptTail } from '../../src/ui/chat.ts'
import { DEFAULT_SAMPLING } from '../../src/client/api.ts'
import { createTokenizer, type Tokenizer } from '../../src/model/tokenizer/index.ts'
import { GENESIS_DIR } from '../fixtures/genesis-devnet.ts'
import 'fake-indexeddb/auto'
import { idbKV } from '../../src/store/kv.ts'

async function genesisTokenizer(): Promise<Tokenizer> {
  const manifest = JSON.parse(readFileSync(`${GENESIS_DIR}manifest.json`, 'utf8')) as { architecture: { vocab_size: number }; tokenizer: { cid: string; bos_id: number; eos_id: number } }
  const car = await CarReader.fromBytes(readFileSync(`${GENESIS_DIR}genesis.car`))
  const block = await car.get(CID.parse(manifest.tokenizer.cid))
  assert.ok(block !== undefined, 'genesis.car holds the tokenizer')
  return createTokenizer('llama2c', block.bytes, manifest.architecture.vocab_size, manifest.tokenizer.bos_id, manifest.tokenizer.eos_id)
}

const tokP = genesisTokenizer()
const STORY = 'Once upon a time, there was a little girl named Lily. She liked to play in the park with her dog.'

describe('fitting a conversation into the context window', () => {
  test('earlier exchanges are read back before the prompt, BOS first', async () => {
    const tok = await tokP
    const history = [{ prompt: 'Once upon a time', answer: ', there was a girl named Lily.' }]
    const f = fitConversation(tok, 256, history, 'Lily liked', 64)
    assert.equal(f.tokens[0], tok.bos)
    assert.equal(f.context.usedExchanges, 1)
    assert.equal(f.context.droppedExchanges, 0)
    assert.equal(f.context.promptTokens, f.tokens.length)
    assert.match(tok.decode(f.tokens), /Once upon a time, there was a girl named Lily\.\n ?Lily liked$/)
    assert.ok(f.tokens.length + f.context.maxTokens <= 256)
  })

  test('the oldest exchanges are dropped, visibly, when the window fills', async () => {
    const tok = await tokP
    const history = Array.from({ length: 12 }, (_, i) => ({ prompt: `Part ${i}. `, answer: STORY }))
    const f = fitConversation(tok, 256, history, 'The end', 128)
    assert.ok(f.context.droppedExchanges > 0, 'some exchanges left out')
    assert.equal(f.context.usedExchanges + f.context.droppedExchanges, 12)
    assert.ok(f.tokens.length + f.context.maxTokens <= 256)
    // The newest ones are kept, with no gap.
    assert.match(tok.decode(f.tokens), /Part 11\./)
    assert.doesNotMatch(tok.decode(f.tokens), /Part 0\./)
    assert.match(contextNotices(f.context).join(' '), /oldest exchanges were left out/)
  })

  test('a prompt longer than the window keeps its end and says how much was cut', async () => {
    const tok = await tokP
    const long = `${'The cat sat on the mat. '.repeat(300)}Then the dog barked`
    const f = fitConversation(tok, 256, [{ prompt: 'a', answer: 'b' }], long, 128)
    assert.ok(f.context.trimmedTokens > 1000, `trimmed ${f.context.trimmedTokens}`)
    assert.equal(f.context.usedExchanges, 0)
    assert.equal(f.tokens.length + f.context.maxTokens, 256)
    assert.ok(f.context.maxTokens >= 1)
    assert.match(tok.decode(f.tokens), /Then the dog barked$/)
    assert.match(contextNotices(f.context).join(' '), /first \d+ tokens were left out/)
  })

  test('Max tokens is bounded by the window, and a long prompt keeps at least half of it', async () => {
    const tok = await tokP
    const f = fitConversation(tok, 256, [], 'Tom', 4096)
    assert.ok(f.context.maxTokens <= 254 && f.context.maxTokens >= 250, `answer budget ${f.context.maxTokens}`)
    const g = fitConversation(tok, 256, [], 'The cat sat on the mat. '.repeat(100), 4096)
    assert.equal(g.tokens.length, 1 + 127)
    assert.equal(g.context.maxTokens, 128)
  })

  test('text outside the vocabulary (Chinese, emoji) is counted and warned about', async () => {
    const tok = await tokP
    const f = fitConversation(tok, 256, [], '你叫什么名字？ 🙂🙂', 32)
    assert.ok(f.context.byteTokens >= f.context.promptLength / 2)
    assert.match(contextNotices(f.context).join(' '), /raw bytes/)
    assert.deepEqual(contextNotices(fitConversation(tok, 256, [], 'Once upon a time', 32).context), [])
  })
})

describe('clean answer boundaries', () => {
  test('an answer the token limit stopped ends at a sentence or a whole word', () => {
    assert.equal(tidyAnswer(' there was a girl. She liked to pl', 'length'), ' there was a girl.')
    assert.equal(tidyAnswer(' a girl. She liked to play with her red ball in the gar', 'length'), ' a girl. She liked to play with her red ball in the…')
    assert.equal(tidyAnswer(' there was a girl named Lily. She liked the park. The su', 'length'), ' there was a girl named Lily. She liked the park.')
    assert.equal(tidyAnswer(' They played all day.', 'length'), ' They played all day.')
    assert.equal(tidyAnswer('a girl ', 'end'), 'a girl')
    assert.equal(tidyAnswer(' and then the', 'stopped'), ' and then the')
  })

  test('an answer that goes on from the middle of a sentence is marked as a continuation', () => {
    assert.equal(continuesPrompt(', there was a girl.'), true)
    assert.equal(continuesPrompt('was happy.'), true)
    assert.equal(continuesPrompt('Lily was happy.'), false)
    assert.equal(continuesPrompt(' Lily was happy.'), false)
    assert.equal(promptTail('Once upon a time'), 'Once upon a time')
    assert.equal(promptTail('The boy found a red ball in the park'), '…ball in the park')
  })

  test('the history read back is what the user saw, refused answers left out', () => {
    const a = newTurn(1, 'Once', DEFAULT_SAMPLING)
    a.status = 'done'
    a.text = ' upon a time.'
    const b = newTurn(2, 'Hi', DEFAULT_SAMPLING)
    b.status = 'failed'
    b.failure = { code: 'UNAVAILABLE', message: 'x', expert: null, relays: [] }
    const c = newTurn(3, 'Tom', DEFAULT_SAMPLING)
    c.status = 'interrupted'
    c.text = ' ran'
    assert.deepEqual(historyOf([a, b, c, newTurn(4, 'next', DEFAULT_SAMPLING)]), [{ prompt: 'Once', answer: ' upon a time.' }, { prompt: 'Tom', answer: ' ran' }])
  })
})

describe('past chats kept in the browser', () => {
  test('saved whole, listed newest first, the oldest forgotten past the limit', async () => {
    const store = new ConversationStore<{ n: number }>(idbKV(`conversations-test-${Date.now()}`, 'conversations'))
    for (let i = 0; i < MAX_CONVERSATIONS + 3; i++) await store.save({ id: `c${i}`, title: `chat ${i}`, created: i, updated: 1000 + i, turns: [{ n: i }] })
    const list = await store.list()
    assert.equal(list.length, MAX_CONVERSATIONS)
    assert.equal(list[0]?.id, `c${MAX_CONVERSATIONS + 2}`)
    assert.equal(await store.get('c0'), null)
    assert.deepEqual((await store.get('c10'))?.turns, [{ n: 10 }])
    await store.remove('c10')
    assert.equal(await store.get('c10'), null)
    assert.equal(conversationTitle('  Once upon\n a time  '), 'Once upon a time')
    assert.equal(conversationTitle('x'.repeat(100)).length, 60)
  })
})
