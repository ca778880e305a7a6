/**
 * Donating, end to end in headless Chromium: the built site served by `blyan start`'s `serve()`
 * (the PoL service judging with the devnet's 3 validator keys) on the PoL devnet (stories260K, 4
 * experts per layer, top-2 routing, TinyStories slices in chain D).
 *
 * - A chat tab answers before anything is mined.
 * - A donor tab creates a wallet and starts donating; the miner worker trains the job's expert on
 *   the CPU reference and submits it. The page is reloaded while the candidate is with the
 *   validators: it follows that candidate to its verdict, training nothing again.
 * - The candidate is accepted with a gain of at least delta; the explorer shows its certificate
 *   (signers, losses, slice) and its reward, the wallet its credits, the Rejections list a refused
 *   candidate; the chat tab marks the old answer's expert as improved, and a new answer runs the
 *   new version.
 *
 * Screenshots of Donate (training, submitted, done; phone), Wallet (desktop, phone), a certified
 * block, the Rejections list and the chat after the new version go to test-results/ (not committed).
 */
import assert from 'node:assert/strict'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import type { Page } from 'playwright-core'
import { serve, type Served } from '../../relay/serve.ts'
import { CHROMIUM_MISSING, FreshProfiles, attr, hasChromium } from '../fixtures/browser.ts'
import { copyPolDevnet, polDevnet } from '../fixtures/pol-devnet.ts'
import { SHARED_DATA_MISSING } from '../fixtures/shared-data.ts'
import { PROMPT, buildSiteDist, holdJob, submitStaleCandidate } from '../fixtures/site-devnet.ts'

const SHOTS = join(fileURLToPath(new URL('../../', import.meta.url)), 'test-results')
const ANSWER_DONE = '[data-testid="chat-answer"][data-done="true"]'
const PROMPTS = [PROMPT, 'Once upon a time, there was a little dog', 'Tom and Sue went to the park']

const dirP = polDevnet()
const skip = dirP === null ? SHARED_DATA_MISSING : !hasChromium() ? CHROMIUM_MISSING : false

async function live(page: Page): Promise<void> {
  await page.locator('[data-testid="sync-status"][data-phase="live"]').waitFor({ timeout: 60_000 })
}

/** Ask in the chat; the answer's index. */
async function ask(page: Page, prompt: string): Promise<number> {
  const n = await page.locator(ANSWER_DONE).count()
  await page.getByTestId('chat-input').fill(prompt)
  await page.getByTestId('chat-send').click()
  await page.locator(ANSWER_DONE).nth(n).waitFor({ timeout: 120_000 })
  return n
}

describe('donating in Chromium', { skip }, () => {
  let served: Served
  let url: string
  let site: { dir: string; cleanup(): void }
  let profiles: FreshProfiles | undefined

  const freshPage = (width?: number, height?: number): Promise<Page> => (profiles as FreshProfiles).page(width, height)

  before(async () => {
    const [dir, built] = await Promise.all([copyPolDevnet(), buildSiteDist()])
    site = built
    served = await serve({ dataDir: dir, port: 0, host: '127.0.0.1', siteRoot: site.dir, log: () => undefined })
    url = served.url.replace(/\/$/, '')
    // Another miner holds the first job (layer0.expert0 gains at most about delta on this devnet): see holdJob.
    await holdJob(url, 'layer0.expert0')
    profiles = await FreshProfiles.launch()
    mkdirSync(SHOTS, { recursive: true })
  })

  after(async () => {
    await profiles?.close()
    await served?.close()
    site?.cleanup()
  })

  test('a donor tab gets an expert version accepted: reload while pending follows it; certificate, reward, credits, rejections; the chat runs the new version', async () => {
    // A chat tab answers before anything is mined.
    const chat = await freshPage()
    await chat.goto(`${url}/?temperature=0#/chat`)
    await live(chat)
    const first = await ask(chat, PROMPT)

    // The donor: a wallet, then Start.
    const donor = await freshPage()
    await donor.goto(`${url}/#/wallet`)
    await live(donor)
    await donor.getByTestId('wallet-create').click()
    const key = await attr(donor, '[data-testid="wallet-public-key"]', 'data-key')
    assert.match(key, /^0[23][0-9a-f]{64}$/)
    await donor.goto(`${url}/#/donate`)
    await donor.getByTestId('donate-start').click()
    await donor.waitForFunction(() => Number(document.querySelector('[data-testid="donate-step"]')?.getAttribute('data-step') ?? 0) >= 10, undefined, { timeout: 120_000 })
    const jobId = await attr(donor, '[data-testid="donate-phase"]', 'data-job')
    assert.match(jobId, /^[0-9a-f]{16}$/)
    assert.equal(await attr(donor, '[data-testid="donate-step"]', 'data-steps'), '40')
    await donor.screenshot({ path: join(SHOTS, 'donate-training.png'), fullPage: true })

    // Submitted: reload while the validators judge it.
    await donor.locator('[data-testid="donate-phase"][data-phase="pending"]').waitFor({ timeout: 120_000 })
    const cid = await attr(donor, '[data-testid="donate-phase"]', 'data-cid')
    const jobExpert = (await donor.locator('[data-testid="donate-phase"] h3 .mono').innerText()).trim()
    assert.ok(Number(await attr(donor, '[data-testid="donate-self-check"]', 'data-improvement')) > 0, 'the self-check found a gain')
    await donor.screenshot({ path: join(SHOTS, 'donate-pending.png'), fullPage: true })
    await donor.reload()
    const outcome = donor.getByTestId('donate-outcome')
    await outcome.waitFor({ timeout: 120_000 })
    assert.equal(await attr(donor, '[data-testid="donate-phase"]', 'data-resumed'), 'follow', 'the reloaded page followed the submitted candidate')
    assert.equal(await donor.getByTestId('donate-step').count(), 0, 'nothing was trained after the reload')
    assert.equal(await outcome.getAttribute('data-status'), 'accepted', await outcome.innerText())
    assert.equal(await outcome.getAttribute('data-cid'), cid, 'the same candidate')
    const improvement = Number(await outcome.getAttribute('data-improvement'))
    const delta = Number(await outcome.getAttribute('data-delta'))
    assert.ok(delta > 0 && improvement >= delta, `improvement ${improvement} >= delta ${delta}`)
    const amount = await outcome.getAttribute('data-amount')
    const reward = await outcome.getAttribute('data-reward')
    assert.ok(amount !== null && Number(amount) > 0 && reward !== null)
    assert.equal(await outcome.getAttribute('data-reward-final'), 'true', 'the node finalized the reward at once')
    await donor.locator(`[data-testid="donate-credits"][data-balance="${amount}"]`).waitFor({ timeout: 30_000 })
    await donor.screenshot({ path: join(SHOTS, 'donate-done.png'), fullPage: true })

    // The explorer: certificate and reward of the new version, and back from the reward.
    await donor.goto(`${url}/#/explorer/${cid}`)
    const cert = donor.getByTestId('block-certificate')
    await cert.waitFor({ timeout: 60_000 })
    assert.ok(Number(await cert.getAttribute('data-signers')) >= 2, 'a quorum of the 3 validators signed')
    const lossBefore = Number(await cert.getAttribute('data-loss-before'))
    const lossAfter = Number(await cert.getAttribute('data-loss-after'))
    assert.ok(Math.abs((lossBefore - lossAfter) / lossBefore - improvement) < 1e-9, 'the certificate has the outcome\'s losses')
    assert.match(await cert.innerText(), /Validation slice/)
    await donor.locator(`[data-testid="block-reward"][data-cid="${reward}"][data-amount="${amount}"]`).waitFor({ timeout: 30_000 })
    await donor.getByTestId('block-verify').click()
    await donor.locator('[data-testid="verify-result"][data-ok]').waitFor({ timeout: 60_000 })
    assert.equal(await donor.getByTestId('verify-result').getAttribute('data-ok'), 'true', await donor.locator('main').innerText())
    assert.equal(await donor.locator('[data-testid="verify-step"][data-step="pol"]').getAttribute('data-status'), 'passed', 'Verify re-checks the certificate\'s quorum')
    await donor.screenshot({ path: join(SHOTS, 'explorer-certified.png'), fullPage: true })
    await donor.locator('[data-testid="block-reward"] a').first().click()
    await donor.locator(`[data-testid="block-reward-for"][data-cid="${cid}"]`).waitFor({ timeout: 30_000 })
    // The node holds the validator keys: the reward was final before the next submission, and the page verified the checkpoint.
    await donor.locator('[data-testid="finality"][data-finality="final"]').waitFor({ timeout: 30_000 })

    // The wallet: the credits and the accepted candidate.
    await donor.goto(`${url}/#/wallet`)
    await donor.locator(`[data-testid="wallet-balance"][data-balance="${amount}"][data-final="${amount}"]`).waitFor({ timeout: 30_000 })
    assert.equal(await donor.getByTestId('wallet-finality').getAttribute('data-pending'), '0', 'nothing pending: the reward is final')
    await donor.locator(`[data-testid="wallet-candidate"][data-cid="${cid}"][data-status="accepted"]`).waitFor()
    await donor.screenshot({ path: join(SHOTS, 'wallet.png'), fullPage: true })
    // Export: behind a warning, the 64 hex digits of the key.
    await donor.getByTestId('wallet-export').click()
    await donor.getByTestId('wallet-export-confirm').click()
    assert.match(await donor.getByTestId('wallet-secret').inputValue(), /^[0-9a-f]{64}$/)
    assert.match(await donor.locator('.danger-box').innerText(), /spend your credits and mine in your name/)
    await donor.screenshot({ path: join(SHOTS, 'wallet-export.png') })
    await donor.setViewportSize({ width: 375, height: 812 })
    await donor.screenshot({ path: join(SHOTS, 'wallet-phone.png'), fullPage: true })
    await donor.goto(`${url}/#/donate`)
    await donor.getByTestId('donate-outcome').waitFor()
    await donor.screenshot({ path: join(SHOTS, 'donate-phone.png'), fullPage: true })
    await donor.setViewportSize({ width: 1280, height: 900 })

    // A refused candidate shows in the explorer's Rejections, with its code.
    const stale = await submitStaleCandidate(url, 'layer2.expert3')
    assert.deepEqual([stale.status, stale.code], [422, 'E_STALE_RULES'])
    await donor.goto(`${url}/#/explorer/rejections`)
    await donor.locator(`[data-testid="rejection"][data-code="E_STALE_RULES"][data-cid="${stale.cid}"]`).waitFor({ timeout: 30_000 })
    await donor.screenshot({ path: join(SHOTS, 'explorer-rejections.png'), fullPage: true })

    // The chat tab: the old answer's entry for the trained expert is marked, a new answer runs the new version.
    const oldList = chat.locator('[data-testid="chat-experts"]').nth(first)
    if ((await oldList.locator(`li[data-expert="${jobExpert}"]`).count()) > 0) {
      await oldList.locator(`[data-testid="expert-newer"][data-expert="${jobExpert}"][data-newer-cid="${cid}"]`).waitFor({ state: 'attached', timeout: 60_000 })
    }
    let used = false
    for (const prompt of PROMPTS) {
      const n = await ask(chat, prompt)
      const entry = chat.locator('[data-testid="chat-experts"]').nth(n).locator(`li[data-expert="${jobExpert}"]`)
      if ((await entry.count()) === 0) continue
      assert.equal(await entry.getAttribute('data-cid'), cid, `answer ${n} ran ${jobExpert} from the new block`)
      used = true
      break
    }
    assert.ok(used, `${jobExpert} was routed in one of the answers`)
    await oldList.locator('summary').click()
    await chat.screenshot({ path: join(SHOTS, 'chat-new-version.png'), fullPage: true })
  })
})
