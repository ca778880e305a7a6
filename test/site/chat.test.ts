/**
 * Issue 17, the chat as people use it (problems 1, 5, 6 and the chat half of 8), in headless
 * Chromium over the committed genesis network (no ../shared needed):
 *
 * 1. the page says what the model is (a card from the chain: size, context, training data,
 *    held-out loss); each answer reads the conversation so far and says how much of it fit; each
 *    answer draws its own seed unless one is set; an answer that goes on from the middle of a
 *    sentence is shown as a continuation, and one the token limit stopped ends on a whole word;
 * 5. a prompt longer than the context is trimmed from its start, with a notice, and still answered;
 *    Max tokens cannot exceed the context;
 * 6. a reload during an answer keeps the conversation (the cut answer marked), and past chats are listed;
 * 8. on a phone, the experts an answer used are one summary line, not 32 rows.
 *
 * Screenshots go to test-results/ (not committed).
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { Page } from 'playwright-core'
import { CHROMIUM_MISSING, hasChromium } from '../fixtures/browser.ts'
import { GENESIS_DIR } from '../fixtures/genesis-devnet.ts'
import { GenesisSite, SHOTS, live } from '../fixtures/genesis-site.ts'

/** Send `prompt` and wait for its answer to settle; the answer element. */
async function ask(page: Page, prompt: string): Promise<ReturnType<Page['locator']>> {
  const before = await page.getByTestId('chat-answer').count()
  await page.getByTestId('chat-input').fill(prompt)
  await page.getByTestId('chat-send').click()
  const answer = page.getByTestId('chat-answer').nth(before)
  await page.waitForFunction((i) => {
    const el = document.querySelectorAll('[data-testid="chat-answer"]')[i]
    return el !== undefined && el.getAttribute('data-status') !== 'running'
  }, before, { timeout: 180_000 })
  return answer
}

describe('chat: memory, model card, seeds, long prompts, reloads, phones', { skip: hasChromium() ? false : CHROMIUM_MISSING }, () => {
  let site: GenesisSite

  before(async () => {
    site = await GenesisSite.start()
  })

  after(async () => {
    await site?.close()
  })

  test('problem 1: a model card, memory of the conversation, a new seed per answer, clean answer boundaries', async () => {
    const page = await site.page()
    await page.goto(`${site.url}/?max_tokens=24#/chat`)
    await live(page)
    const card = page.getByTestId('model-card')
    await card.waitFor({ timeout: 30_000 })
    const said = await card.innerText()
    assert.match(said, /continues the text you give it/)
    // The parameter count the page computes from chain A's architecture is the genesis record's.
    const manifest = JSON.parse(readFileSync(join(GENESIS_DIR, 'manifest.json'), 'utf8')) as { summary: { model: { parameters: number } } }
    assert.match(said, new RegExp(`${manifest.summary.model.parameters.toLocaleString('en-US')}-parameter`))
    assert.match(said, /256 tokens/)
    assert.match(said, /genesis-train/)
    assert.match(said, /Held-out loss\s+1\.\d{3} nats per token/)

    const first = await ask(page, 'Once upon a time')
    assert.equal(await first.getAttribute('data-status'), 'done')
    const second = await ask(page, 'Once upon a time')
    const seeds = await page.getByTestId('chat-seed').allInnerTexts()
    assert.equal(seeds.length, 2)
    assert.notEqual(seeds[0], seeds[1], 'each answer draws its own seed')
    const memory = await page.getByTestId('chat-memory').allInnerTexts()
    assert.match(memory[0] as string, /no earlier exchange/)
    assert.match(memory[1] as string, /1 earlier exchange ·/)
    for (const a of [first, second]) {
      const text = (await a.innerText()).trim()
      assert.doesNotMatch(text, /^[,;:]/, `an answer starts with punctuation: ${JSON.stringify(text)}`)
      // 24 tokens is short: an answer the limit stopped ends on a sentence or a whole word, marked.
      assert.match(text, /([.!?]["”’)]*|…)$/, `the answer ends mid-word: ${JSON.stringify(text)}`)
    }
    await page.screenshot({ path: join(SHOTS, 'chat-memory.png'), fullPage: true })
  })

  test('problem 5: a prompt longer than the context is trimmed from its start, said, and answered; Max tokens is bounded', async () => {
    const page = await site.page()
    await page.goto(`${site.url}/?max_tokens=16#/chat`)
    await live(page)
    const long = `${'The little dog ran to the park and played with a ball. '.repeat(95)}Then Lily`
    assert.ok(long.length > 5000)
    const answer = await ask(page, long)
    const said = await page.locator('.turn').first().innerText()
    assert.equal(await answer.getAttribute('data-status'), 'done', said)
    assert.ok((await answer.getAttribute('data-tokens'))?.length, `the answer has tokens: ${said.slice(-1500)}`)
    assert.match(await page.getByTestId('chat-notices').innerText(), /its first \d+ tokens were left out/)

    await page.locator('details.sampling summary').click()
    const max = page.getByLabel('Max tokens')
    await max.fill('4096')
    assert.match(await page.locator('details.sampling').innerText(), /Max tokens must be between 1 and 255/)
  })

  test('problem 6: a reload during an answer keeps the conversation; past chats are listed', async () => {
    const page = await site.page()
    await page.goto(`${site.url}/?max_tokens=255&temperature=1#/chat`)
    await live(page)
    await ask(page, 'Lily had a little cat who')
    const answers = page.getByTestId('chat-answer')
    // Reload while an answer streams, as soon as this browser has kept some of it. An answer may end
    // (a story's end token) before the reload lands: then the next one is tried.
    let status: string | null = null
    for (let tries = 0; tries < 4 && status !== 'interrupted'; tries++) {
      const n = await answers.count()
      await page.getByTestId('chat-input').fill('The cat was very happy because')
      await page.getByTestId('chat-send').click()
      await page.waitForFunction(async (i) => {
        const db = await new Promise<IDBDatabase>((resolve, reject) => {
          const r = indexedDB.open('blyan-chat')
          r.onsuccess = () => resolve(r.result)
          r.onerror = () => reject(r.error)
        })
        const all = await new Promise<unknown[]>((resolve, reject) => {
          const r = db.transaction('conversations').objectStore('conversations').getAll()
          r.onsuccess = () => resolve(r.result)
          r.onerror = () => reject(r.error)
        })
        db.close()
        return all.some((c) => {
          const t = (c as { turns: { status: string; text: string }[] }).turns[i]
          return t !== undefined && t.status === 'running' && t.text.trim() !== ''
        })
      }, n, { timeout: 120_000, polling: 10 })
      await page.reload()
      await answers.nth(n).waitFor({ timeout: 30_000 })
      assert.equal(await answers.count(), n + 1, 'every turn is back')
      status = await answers.nth(n).getAttribute('data-status')
      if (status === 'interrupted') {
        assert.match(await page.locator('.prompt').nth(n).innerText(), /The cat was very happy because/)
        assert.ok((await answers.nth(n).innerText()).trim().length > 0, 'what had streamed is kept')
      }
    }
    assert.equal(status, 'interrupted', 'a reload during an answer marks it cut')
    assert.equal(await answers.nth(0).getAttribute('data-status'), 'done')
    await page.getByTestId('chat-interrupted').first().waitFor()
    const turns = await answers.count()

    await page.getByRole('button', { name: 'New chat' }).click()
    await page.getByTestId('past-chats').locator('summary').click()
    const past = page.getByTestId('past-chat')
    assert.match(await past.first().innerText(), /Lily had a little cat who/)
    await past.first().click()
    await answers.nth(turns - 1).waitFor()
    assert.equal(await answers.count(), turns)
  })

  test('problem 8 (chat): on a phone the experts an answer used are one collapsed line under the answer', async () => {
    const page = await site.page(390, 844)
    await page.goto(`${site.url}/?max_tokens=32#/chat`)
    await live(page)
    await ask(page, 'The boy found a red ball in the park')
    const experts = page.getByTestId('chat-experts').first()
    assert.equal(await experts.evaluate((d) => (d as HTMLDetailsElement).open), false, 'the expert list starts collapsed')
    const box = await experts.boundingBox()
    assert.ok(box !== null && box.height < 60, `the expert list is one line (${box?.height} px)`)
    assert.match(await experts.innerText(), /\d+ experts used/)
    await page.screenshot({ path: join(SHOTS, 'chat-phone.png'), fullPage: true })
  })
})
