/**
 * Issue 17, problem 7: a page whose only relay is down says so within seconds in every view: the
 * chat refuses the prompt with "cannot reach a relay" (not 60 s of "Syncing headers 0 B"), the
 * explorer's lists say the relay cannot be reached (not "No blocks on chain B yet"), and the status
 * strip names the relay with its retry countdown.
 */
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import type { Page } from 'playwright-core'
import { CHROMIUM_MISSING, hasChromium } from '../fixtures/browser.ts'
import { GenesisSite } from '../fixtures/genesis-site.ts'
import { until } from '../fixtures/network.ts'

/** A local URL nothing listens on (a port taken, then freed). */
async function deadRelay(): Promise<string> {
  const s = createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as AddressInfo).port
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return `http://127.0.0.1:${port}`
}

/** Watch `page` for up to `ms` until `done` shows, failing if `never` shows first. */
async function within(page: Page, done: string, never: RegExp, ms: number): Promise<number> {
  const started = Date.now()
  await until(`${done} within ${ms / 1000} s`, async () => {
    const text = await page.locator('main').innerText().catch(() => '')
    assert.doesNotMatch(text, never)
    return page.locator(done).first().isVisible().catch(() => false)
  }, ms, 50)
  return Date.now() - started
}

describe('a page whose relay is down says so at once', { skip: hasChromium() ? false : CHROMIUM_MISSING }, () => {
  let site: GenesisSite
  let dead: string

  before(async () => {
    site = await GenesisSite.start()
    dead = await deadRelay()
  })

  after(async () => {
    await site?.close()
  })

  test('chat: a prompt is answered with "cannot reach a relay" within seconds', async () => {
    const page = await site.page()
    await page.goto(`${site.url}/?relay=${encodeURIComponent(dead)}#/chat`)
    await page.getByTestId('chat-input').fill('Once upon a time')
    await page.getByTestId('chat-send').click()
    const ms = await within(page, '[data-testid="chat-failure"]', /No blocks on chain/, 15_000)
    assert.match(await page.getByTestId('chat-failure').innerText(), /Cannot reach a relay/)
    console.log(`# a dead relay, chat: said in ${ms} ms`)
    const notice = page.locator('[data-testid="relay-notice"]', { hasText: dead })
    assert.match(await notice.innerText(), /unreachable, retrying/)
  })

  test('explorer: the lists say the relay cannot be reached, never "No blocks on chain B yet"', async () => {
    const page = await site.page()
    await page.goto(`${site.url}/?relay=${encodeURIComponent(dead)}#/explorer/chain/B`)
    const ms = await within(page, '[data-testid="explorer-empty"][data-phase="offline"]', /No blocks on chain B yet/, 15_000)
    assert.match(await page.getByTestId('explorer-empty').innerText(), new RegExp(`Cannot reach a relay: ${dead.replace(/[.]/g, '\\.')}`))
    console.log(`# a dead relay, explorer: said in ${ms} ms`)
  })
})
