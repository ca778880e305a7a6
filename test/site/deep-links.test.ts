/**
 * Issue 17, problem 2: shared explorer links opened in a fresh tab (empty cache, the chain still
 * syncing). A search link (`#/explorer/search/layer1.expert3`) resolves to its block once the page is
 * live, instead of "Nothing matches" for good; a block link says it is syncing, never "No such
 * block", until the block appears.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { Page } from 'playwright-core'
import { serve, type Served } from '../../relay/serve.ts'
import { CHROMIUM_MISSING, FreshProfiles, hasChromium } from '../fixtures/browser.ts'
import { genesisDevnet } from '../fixtures/genesis-devnet.ts'
import { until } from '../fixtures/network.ts'
import { buildSiteDist } from '../fixtures/site-devnet.ts'

describe('explorer links opened in a fresh tab', { skip: hasChromium() ? false : CHROMIUM_MISSING }, () => {
  let served: Served
  let site: { dir: string; cleanup(): void }
  let profiles: FreshProfiles | undefined

  before(async () => {
    const [dir, built] = await Promise.all([genesisDevnet(), buildSiteDist()])
    site = built
    served = await serve({ dataDir: dir, port: 0, host: '127.0.0.1', siteRoot: site.dir, log: () => undefined })
    profiles = await FreshProfiles.launch()
  })

  after(async () => {
    await profiles?.close()
    await served?.close()
    site?.cleanup()
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
    const page = await (profiles as FreshProfiles).page()
    await page.goto(`${served.url}#/explorer/search/layer1.expert3`)
    await watch(page, 'article.detail', 'Nothing matches')
    assert.match(await page.locator('article.detail h3').first().innerText(), /layer1\.expert3/)
  })

  test('a block link says it is syncing, never "No such block", until the block shows', async () => {
    const genesis = served.node.store.genesis()?.cid.toString() as string
    const page = await (profiles as FreshProfiles).page()
    await page.goto(`${served.url}#/explorer/${genesis}`)
    try {
      await watch(page, 'article.detail', 'No such block')
    } catch (e) {
      console.log((await page.locator('main').innerText()).slice(0, 1500))
      throw e
    }
  })
})
