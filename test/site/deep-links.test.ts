/**
 * Issue 17, problem 2: shared explorer links opened in a fresh tab (empty cache, the chain still
 * syncing). A search link (`#/explorer/search/layer1.expert3`) resolves to its block once the page is
 * live, instead of "Nothing matches" for good; a block link says it is syncing, never "No such
 * block", until the block appears.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { Page } from 'playwright-core'
import { CHROMIUM_MISSING, hasChromium } from '../fixtures/browser.ts'
import { GenesisSite } from '../fixtures/genesis-site.ts'
import { until } from '../fixtures/network.ts'

describe('explorer links opened in a fresh tab', { skip: hasChromium() ? false : CHROMIUM_MISSING }, () => {
  let site: GenesisSite

  before(async () => {
    site = await GenesisSite.start()
  })

  after(async () => {
    await site?.close()
  })

  /** Watch `page` until `done` holds, failing if `never` ever shows on the way. */
  async function watch(page: Page, done: string, never: string): Promise<void> {
    let seen = false
    await until(`${done} on the page`, async () => {
      if (await page.getByText(never, { exact: false }).first().isVisible().catch(() => false)) seen = true
      return page.locator(done).first().isVisible().catch(() => false)
    }, 60_000, 40)
    assert.equal(seen, false, `"${never}" was shown before the page was live`)
  }

  test('a search link resolves to its block once the page is live', async () => {
    const page = await site.page()
    await page.goto(`${site.url}/#/explorer/search/layer1.expert3`)
    await watch(page, 'article.detail', 'Nothing matches')
    assert.match(await page.locator('article.detail h3').first().innerText(), /layer1\.expert3/)
  })

  test('a block link says it is syncing, never "No such block", until the block shows', async () => {
    const genesis = site.served.node.store.genesis()?.cid.toString() as string
    const page = await site.page()
    await page.goto(`${site.url}/#/explorer/${genesis}`)
    try {
      await watch(page, 'article.detail', 'No such block')
    } catch (e) {
      console.log((await page.locator('main').innerText()).slice(0, 1500))
      throw e
    }
  })
})
