/**
 * Issue 15's whole path in headless Chromium, on the PoL devnet (stories260K, 4 experts per layer,
 * top-2, 3 validator keys) served by `serve()` with the built site:
 *
 * 1. A proposer proposes a fresh TinyStories slice as training data in the Datasets view; the
 *    node's validators screen it and approve it (silver); it comes into force.
 * 2. A donor (another browser profile) donates; the jobs on other pools are held by other miners, so
 *    its job trains on the new pool. The version is accepted.
 * 3. The accepted version's certificate links its training record, which names the new pool; its
 *    reward pays the proposer the data share, and the proposer's wallet shows it.
 * 4. The explorer's "Audit the training" replays the record in the page (on the CPU reference) and
 *    passes: bit for bit for a CPU-trained record, within tolerance for a WebGPU one (the page's
 *    trainer where WebGPU is available, SwiftShader here).
 */
import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { CID } from 'multiformats/cid'
import { decodeRecord } from '../../src/chain/record.ts'
import type { RewardDocument } from '../../src/chain/ledger.ts'
import type { AcceptedBlock } from '../../src/chain/view.ts'
import type { Job } from '../../src/pol/job.ts'
import { serve, type Served } from '../../relay/serve.ts'
import { CHROMIUM_MISSING, FreshProfiles, attr, hasChromium } from '../fixtures/browser.ts'
import { copyPolDevnet, polDevnet } from '../fixtures/pol-devnet.ts'
import { SHARED_DATA_MISSING, sharedData } from '../fixtures/shared-data.ts'
import { buildSiteDist, holdJob } from '../fixtures/site-devnet.ts'

const SHOTS = join(fileURLToPath(new URL('../../', import.meta.url)), 'test-results')
const dirP = polDevnet()
const stories = sharedData('tinystories_train_slice.txt')
const skip = dirP === null || stories === null ? SHARED_DATA_MISSING : !hasChromium() ? CHROMIUM_MISSING : false

describe('a dataset from proposal to an audited, rewarded version, in Chromium', { skip }, () => {
  let served: Served
  let url: string
  let site: { dir: string; cleanup(): void }
  let profiles: FreshProfiles | undefined
  const tmp = mkdtempSync(join(tmpdir(), 'blyan-data-flow-'))

  before(async () => {
    const [dir, built] = await Promise.all([copyPolDevnet(), buildSiteDist()])
    site = built
    served = await serve({ dataDir: dir, port: 0, host: '127.0.0.1', siteRoot: site.dir, log: () => undefined })
    url = served.url.replace(/\/$/, '')
    profiles = await FreshProfiles.launch()
    mkdirSync(SHOTS, { recursive: true })
  })

  after(async () => {
    await profiles?.close()
    await served?.close()
    site?.cleanup()
    rmSync(tmp, { recursive: true, force: true })
  })

  test('propose, screen, train on it, reward the proposer, audit in the page', async () => {
    // 1. The proposer.
    const proposer = await (profiles as FreshProfiles).page()
    await proposer.goto(`${url}/#/wallet`)
    await proposer.getByTestId('wallet-create').click()
    const proposerKey = await attr(proposer, '[data-testid="wallet-public-key"]', 'data-key')
    const file = join(tmp, 'stories.txt')
    writeFileSync(file, (stories as Uint8Array).subarray(700_000, 820_000))
    await proposer.goto(`${url}/#/datasets`)
    await proposer.getByTestId('dataset-name').fill('more-stories')
    await proposer.getByTestId('dataset-file').setInputFiles(file)
    await proposer.getByTestId('dataset-propose').click()
    const screened = proposer.locator('[data-testid="dataset-outcome"]:not([data-stage="proposed"])')
    await screened.waitFor({ timeout: 120_000 })
    assert.equal(await screened.getAttribute('data-stage'), 'approved', await proposer.locator('main').innerText())
    const pool = await attr(proposer, '[data-testid="dataset-row"]:has-text("more-stories")', 'data-cid')

    // 2. Other miners hold the jobs on the other pool (and the one expert that barely gains): the donor's job trains on the new pool.
    const { jobs } = (await (await fetch(`${url}/api/jobs`)).json()) as { jobs: Job[] }
    assert.ok(jobs.some((j) => j.shard.dataset === pool), 'some jobs draw from the new pool')
    for (const j of jobs) if (j.shard.dataset !== pool || j.expert === 'layer0.expert0') await holdJob(url, j.expert)
    const donor = await (profiles as FreshProfiles).page()
    await donor.goto(`${url}/#/wallet`)
    await donor.getByTestId('wallet-create').click()
    await donor.locator('[data-testid="wallet-public-key"]').waitFor()
    await donor.goto(`${url}/#/donate`)
    // Keep going: a job whose self-check finds no gain worth sending is followed by the next free one on the new pool.
    await donor.getByTestId('donate-keep-going').check()
    await donor.getByTestId('donate-start').click()
    const outcome = donor.locator('[data-testid="donate-outcome"][data-status="accepted"]')
    await outcome.waitFor({ timeout: 420_000 })
    const cid = await outcome.getAttribute('data-cid') as string
    await donor.getByTestId('donate-stop').click()

    // 3. The record names the pool; the reward pays its proposer.
    const store = served.node.store
    const version = store.get(CID.parse(cid)) as AcceptedBlock
    const record = decodeRecord(store.getRaw(version.certificate?.value.record as CID) as Uint8Array)
    assert.equal(record.dataset.toString(), pool, 'the accepted version learned from the proposed pool')
    const reward = store.headers('C', 0, 1 << 20, 1 << 16).find((b) => b.certificate?.value.candidate.equals(version.cid) === true) as AcceptedBlock
    const share = (reward.document as RewardDocument).data?.amount
    assert.ok(share !== undefined && share > 0)
    await proposer.goto(`${url}/#/wallet`)
    await proposer.locator(`[data-testid="wallet-balance"][data-balance="${share}"]`).waitFor({ timeout: 60_000 })
    const balance = (await (await fetch(`${url}/api/balance/${proposerKey}`)).json()) as { balance: number }
    assert.equal(balance.balance, share, 'the proposer earned the data share')
    await proposer.goto(`${url}/#/datasets`)
    await proposer.locator('[data-testid="dataset-row"]:has-text("1 version learned from it")').waitFor({ timeout: 30_000 })

    // 4. The explorer audits the record on the page's own device.
    await proposer.goto(`${url}/#/explorer/${cid}`)
    await proposer.getByTestId('audit-run').click()
    const audit = proposer.locator('[data-testid="audit-result"]')
    await audit.waitFor({ timeout: 240_000 })
    assert.equal(await audit.getAttribute('data-pass'), 'true', await audit.innerText())
    // A WebGPU-trained record (the page trains on WebGPU where it can) replays within tolerance; a CPU one bit for bit.
    const mode = record.backend === 'cpu' ? 'bit for bit' : 'within tolerance'
    assert.match(await audit.innerText(), new RegExp(`Passed \\(${mode}\\).*Learned from more-stories`))
    await proposer.screenshot({ path: join(SHOTS, 'explorer-audit.png'), fullPage: true })
  })
})
