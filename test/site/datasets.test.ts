/**
 * The Datasets view in headless Chromium, on the committed genesis network served by `serve()` with
 * its validator keys: a user with a wallet proposes a fresh slice of TinyStories as training data;
 * the page hashes it into tiles, seals the proposal with the wallet's key on the chain it verified,
 * submits it, and follows the validators' screening until the pool is approved (silver) and in
 * force; a copy of an approved pool is rejected and the view says why. Screenshots go to
 * test-results/ (not committed).
 */
import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import type { Page } from 'playwright-core'
import { devnetParts, readGenesis } from '../../relay/genesis/genesis.ts'
import { serve, type Served } from '../../relay/serve.ts'
import { CHROMIUM_MISSING, FreshProfiles, hasChromium } from '../fixtures/browser.ts'
import { GENESIS_DIR, genesisDevnet } from '../fixtures/genesis-devnet.ts'
import { SHARED_DATA_MISSING, sharedData } from '../fixtures/shared-data.ts'
import { buildSiteDist } from '../fixtures/site-devnet.ts'

const SHOTS = join(fileURLToPath(new URL('../../', import.meta.url)), 'test-results')
const stories = sharedData('tinystories_train_slice.txt')
const skip = stories === null ? SHARED_DATA_MISSING : !hasChromium() ? CHROMIUM_MISSING : false

describe('the Datasets view in Chromium', { skip }, () => {
  let served: Served
  let url: string
  let site: { dir: string; cleanup(): void }
  let profiles: FreshProfiles | undefined
  let page: Page
  const tmp = mkdtempSync(join(tmpdir(), 'blyan-datasets-view-'))

  before(async () => {
    const [dir, built] = await Promise.all([genesisDevnet(), buildSiteDist()])
    site = built
    served = await serve({ dataDir: dir, port: 0, host: '127.0.0.1', siteRoot: site.dir, log: () => undefined })
    url = served.url.replace(/\/$/, '')
    profiles = await FreshProfiles.launch()
    mkdirSync(SHOTS, { recursive: true })
    page = await profiles.page()
    await page.goto(`${url}/#/wallet`)
    await page.getByTestId('wallet-create').click()
    await page.locator('[data-testid="wallet-public-key"]').waitFor()
  })

  after(async () => {
    await profiles?.close()
    await served?.close()
    site?.cleanup()
    rmSync(tmp, { recursive: true, force: true })
  })

  async function propose(name: string, bytes: Uint8Array): Promise<string> {
    const file = join(tmp, `${name}.txt`)
    writeFileSync(file, bytes)
    await page.goto(`${url}/#/datasets`)
    await page.reload() // a fresh view for each proposal
    await page.getByTestId('dataset-name').fill(name)
    await page.getByTestId('dataset-split').selectOption('train')
    await page.getByTestId('dataset-file').setInputFiles(file)
    await page.getByTestId('dataset-propose').click()
    const outcome = page.locator('[data-testid="dataset-outcome"]:not([data-stage="proposed"])')
    await outcome.waitFor({ timeout: 120_000 })
    return (await outcome.getAttribute('data-stage')) as string
  }

  test('a fresh training pool is proposed from the page, screened, approved (silver) and in force', async () => {
    const stage = await propose('fresh-stories', (stories as Uint8Array).subarray(500_000, 600_000))
    assert.equal(stage, 'approved')
    assert.match(await page.getByTestId('dataset-outcome').innerText(), /fresh-stories: approved, silver, in force/)
    const row = page.locator('[data-testid="dataset-row"]', { hasText: 'fresh-stories' })
    assert.match(await row.innerText(), /Quality gate: passed/)
    const cid = await row.getAttribute('data-cid')
    const jobs = (await (await fetch(`${url}/api/jobs`)).json()) as { jobs: { shard: { dataset: string } }[] }
    assert.ok(jobs.jobs.some((j) => j.shard.dataset === cid), 'jobs draw from it')
    await page.screenshot({ path: join(SHOTS, 'datasets-approved.png'), fullPage: true })
  })

  test('a copy of an approved pool is rejected, and the view says why', async () => {
    const copy = devnetParts(await readGenesis(GENESIS_DIR)).datasets.find((d) => d.split === 'train')?.bytes as Uint8Array
    assert.equal(await propose('copied-pool', copy), 'rejected')
    assert.match(await page.getByTestId('dataset-outcome').innerText(), /copied-pool: rejected \(duplicates: \d+ of \d+ documents repeat/)
    await page.screenshot({ path: join(SHOTS, 'datasets-rejected.png'), fullPage: true })
  })
})
