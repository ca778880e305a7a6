/**
 * Issue 16 in the browser: a tab opened on relay R2 of a peer network (a validator node N0 and two
 * relays R1, R2, talking libp2p) sees a block submitted at N0 arrive, through the network and R2's
 * `/ws`, and verifies it; R2 announces the network's other relays in `/api/status`, the tab follows
 * them (the Network view lists them and their peers, validators marked), and with R2 stopped it
 * carries on: the next block submitted at N0 reaches it from another relay and verifies.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { Page } from 'playwright-core'
import type { SecretKey } from '../../src/chain/keys.ts'
import { nextRulesSubmission } from '../../relay/node/governance.ts'
import { serve, type Served } from '../../relay/serve.ts'
import { CHROMIUM_MISSING, FreshProfiles, hasChromium } from '../fixtures/browser.ts'
import { addressOf, networkSeed, nodeDir, until, type NetworkSeed } from '../fixtures/network.ts'
import { buildSiteDist } from '../fixtures/site-devnet.ts'

describe('a tab on a relay of the peer network', { skip: hasChromium() ? false : CHROMIUM_MISSING }, () => {
  let seed: NetworkSeed
  let n0: Served
  let r1: Served
  let r2: Served
  let site: { dir: string; cleanup(): void }
  let profiles: FreshProfiles | undefined
  let page: Page

  before(async () => {
    const [s, built] = await Promise.all([networkSeed(4), buildSiteDist()])
    seed = s
    site = built
    const start = (dir: string, peers: string[], siteRoot?: string): Promise<Served> => serve({
      dataDir: dir, port: 0, host: '127.0.0.1', log: () => undefined, ...(siteRoot === undefined ? {} : { siteRoot }), p2p: { listen: ['/ip4/127.0.0.1/tcp/0'], peers }
    })
    n0 = await start(nodeDir(seed, seed.keys[0] as SecretKey), [])
    r1 = await start(nodeDir(seed, null), [addressOf(n0)], site.dir)
    r2 = await start(nodeDir(seed, null), [addressOf(n0), addressOf(r1)], site.dir)
    await until('R2 to know the other relays', () => (r2.network?.relays().length ?? 0) === 3, 20_000)
    profiles = await FreshProfiles.launch()
    page = await profiles.page()
  })

  after(async () => {
    await profiles?.close()
    for (const n of [n0, r1, r2]) await n?.close().catch(() => undefined)
    site?.cleanup()
  })

  /** A block submitted at N0 (a rules block sealed by validator 0); its CID. */
  async function submitAtN0(): Promise<string> {
    const block = await n0.node.submitCar(await nextRulesSubmission(n0.node.store, seed.keys[0] as SecretKey, Date.now()))
    return block.cid.toString()
  }

  /** Wait until the tab's explorer shows `cid` (its verified chain holds it), then verify it from the page. */
  async function seenAndVerified(cid: string): Promise<void> {
    await until(`the tab to hold ${cid}`, async () => {
      await page.evaluate(() => { location.hash = '#/explorer' })
      await page.evaluate((c) => { location.hash = `#/explorer/${c}` }, cid)
      return page.locator('article.detail').isVisible({ timeout: 2000 }).catch(() => false)
    }, 60_000, 500)
    await page.getByTestId('block-verify').click()
    await page.locator('[data-testid="verify-result"][data-ok]').waitFor({ timeout: 60_000 })
    assert.equal(await page.getByTestId('verify-result').getAttribute('data-ok'), 'true')
  }

  test('a block submitted at N0 reaches the tab on R2 and verifies; with R2 stopped, the tab carries on from a relay R2 announced', async () => {
    await page.goto(`${r2.url}#/explorer`)
    await page.locator('[data-testid="sync-status"][data-phase="live"]').waitFor({ timeout: 60_000 })
    const first = await submitAtN0()
    await seenAndVerified(first)
    // The block page says how it reached the network: R2's node got it by gossip from N0's.
    await page.locator(`[data-testid="block-received"][data-from="${n0.network?.peerId}"]`).waitFor({ timeout: 20_000 })
    // The Network view: R2's node and its peers (N0 holds a validator key, R1 none), and the relays R2 announced, followed too.
    await page.evaluate(() => { location.hash = '#/explorer/network' })
    const r2Card = page.locator(`[data-testid="network-relay"][data-url="${r2.url.replace(/\/$/, '')}"]`)
    await r2Card.locator('[data-testid="network-peer"]').nth(1).waitFor({ timeout: 30_000 })
    assert.equal(await r2Card.locator('[data-testid="network-peer"][data-validator]').count(), 1, 'one validator among R2\'s peers')
    await until('the tab to follow the 3 relays', async () => (await page.locator('[data-testid="network-relay"]').count()) === 3, 30_000, 500)
    await r2.close()
    await seenAndVerified(await submitAtN0())
  })
})
