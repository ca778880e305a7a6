/**
 * The newcomer's path, end to end: a fresh checkout of this tree in a temporary directory with no
 * `../shared` beside it (no model file, no TinyStories), `npm start` (node_modules linked from this
 * checkout, as `npm ci` would install them from the lockfile), then headless Chromium:
 *
 * - the chat (temperature 0) writes an English story: its words and word pairs are those of the
 *   generated training pool, which is English (the teacher's stories);
 * - the explorer verifies a block (every step passed) and shows the genesis training record of
 *   the validation dataset with per-layer expert usage;
 * - a donor tab gets an expert version accepted by PoL on the generated datasets.
 *
 * Screenshots go to test-results/genesis-*.png (not committed).
 */
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { execFileSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import type { Page } from 'playwright-core'
import { readGenesis } from '../../relay/genesis/genesis.ts'
import { CHROMIUM_MISSING, FreshProfiles, hasChromium } from '../fixtures/browser.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const SHOTS = join(ROOT, 'test-results')
const ANSWER_DONE = '[data-testid="chat-answer"][data-done="true"]'
const skip = !hasChromium() ? CHROMIUM_MISSING : !existsSync(join(ROOT, 'genesis', 'manifest.json')) ? 'no genesis/ in this checkout (npm run genesis)' : false

/** The files a clone of this tree has: tracked, plus untracked files git does not ignore (work in progress). */
function checkout(to: string): void {
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' }).split('\0').filter((f) => f !== '')
  for (const f of files) {
    if (!existsSync(join(ROOT, f))) continue // deleted in the working tree
    mkdirSync(dirname(join(to, f)), { recursive: true })
    cpSync(join(ROOT, f), join(to, f))
  }
  symlinkSync(join(ROOT, 'node_modules'), join(to, 'node_modules'), 'dir')
}

/** `npm start` in `dir`; resolves with the URL it prints once serving. */
function npmStart(dir: string, log: string[]): Promise<{ url: string; child: ChildProcess }> {
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', HOST: '127.0.0.1' }
  for (const k of ['BLYAN_MODEL', 'BLYAN_TOKENIZER', 'BLYAN_DATA', 'TEST_FILTER']) delete env[k]
  const child = spawn('npm', ['start'], { cwd: dir, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      const text = chunk.toString()
      log.push(text)
      const m = /Blyan node at (http:\/\/\S+?)\/?\s/.exec(log.join(''))
      if (m !== null) resolve({ url: m[1] as string, child })
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', onData)
    child.once('exit', (code) => reject(new Error(`npm start exited with ${code}:\n${log.join('')}`)))
  })
}

/** Words of a text, lower case. */
function words(text: string): string[] {
  return text.toLowerCase().match(/[a-z]+(?:'[a-z]+)?/g) ?? []
}

async function live(page: Page): Promise<void> {
  await page.locator('[data-testid="sync-status"][data-phase="live"]').waitFor({ timeout: 120_000 })
}

describe('a fresh clone without ../shared: npm start gives chat, explorer and donation', { skip }, () => {
  let work: string
  let clone: string
  let server: { url: string; child: ChildProcess }
  let profiles: FreshProfiles | undefined
  const log: string[] = []

  const freshPage = (width?: number, height?: number): Promise<Page> => (profiles as FreshProfiles).page(width, height)

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'blyan-fresh-'))
    clone = join(work, 'blyan')
    checkout(clone)
    assert.ok(!existsSync(join(clone, '..', 'shared')), 'no ../shared beside the clone')
    server = await npmStart(clone, log)
    profiles = await FreshProfiles.launch()
    mkdirSync(SHOTS, { recursive: true })
  })

  after(async () => {
    await profiles?.close()
    if (server?.child.pid !== undefined) {
      try {
        process.kill(-server.child.pid, 'SIGTERM')
      } catch {
        // already gone
      }
      await new Promise((r) => setTimeout(r, 500))
    }
    if (work !== undefined) rmSync(work, { recursive: true, force: true })
  })

  test('first run: the devnet is made from genesis/ (no model configured), offline', () => {
    const out = log.join('')
    assert.match(out, /creating a devnet in .* from the genesis in /)
    assert.match(out, /devnet in .*: \d+ blocks from the genesis/)
  })

  test('the chat writes an English story; the explorer verifies a block and shows the training record with expert usage', async () => {
    const genesis = await readGenesis(join(clone, 'genesis'))
    const train = genesis.manifest.datasets.find((d) => d.split === 'train')
    assert.ok(train !== undefined)
    const pool = words(new TextDecoder().decode(genesis.file(train.cid)))
    const vocabulary = new Set(pool)
    const pairs = new Set(pool.slice(1).map((w, i) => `${pool[i]} ${w}`))

    const page = await freshPage()
    await page.goto(`${server.url}/?temperature=0#/chat`)
    await live(page)
    await page.getByTestId('chat-input').fill('Once upon a time')
    await page.getByTestId('chat-send').click()
    await page.locator(ANSWER_DONE).first().waitFor({ timeout: 180_000 })
    const answer = await page.getByTestId('chat-answer').first().innerText()
    const said = words(answer)
    const known = said.filter((w) => vocabulary.has(w)).length / said.length
    const fluent = said.slice(1).filter((w, i) => pairs.has(`${said[i]} ${w}`)).length / Math.max(1, said.length - 1)
    console.log(`# genesis chat: ${said.length} words, ${(100 * known).toFixed(0)}% in the pool's vocabulary, ${(100 * fluent).toFixed(0)}% of word pairs seen in the pool: ${answer.slice(0, 300)}`)
    assert.ok(said.length >= 20, `a story, not a fragment: ${answer}`)
    assert.ok(known >= 0.95, `English words: ${answer}`)
    assert.ok(fluent >= 0.6, `English word order: ${answer}`)
    assert.ok(['the', 'was', 'and', 'a', 'to', 'she', 'he'].filter((w) => said.includes(w)).length >= 3, `function words: ${answer}`)
    assert.ok((await page.locator('[data-testid="chat-experts"] li').count()) >= 8, 'the experts the answer used are listed')
    await page.screenshot({ path: join(SHOTS, 'genesis-chat.png'), fullPage: true })

    // Explorer: an expert block verifies step by step.
    const params = (await (await fetch(`${server.url}/api/params`)).json()) as { entries: Record<string, string> }
    const expertBlock = params.entries['layer1.expert3'] as string
    await page.goto(`${server.url}/#/explorer`)
    await live(page)
    await page.getByTestId('explorer-search').fill('layer1.expert3')
    await page.getByTestId('explorer-search').press('Enter')
    await page.locator(`a[href="#/explorer/${expertBlock}"]`).first().click()
    await page.getByTestId('block-verify').click()
    await page.locator('[data-testid="verify-result"][data-ok]').waitFor({ timeout: 120_000 })
    assert.equal(await page.getByTestId('verify-result').getAttribute('data-ok'), 'true', await page.locator('main').innerText())
    const statuses = await page.locator('[data-testid="verify-step"]').evaluateAll((els) => els.map((e) => `${e.getAttribute('data-step')}:${e.getAttribute('data-status')}`))
    for (const id of ['cid', 'pow', 'signature', 'rules', 'tile-root', 'tile-leaf']) assert.ok(statuses.includes(`${id}:passed`), `${id} passed in ${statuses.join(' ')}`)
    assert.ok(statuses.every((s) => s.endsWith(':passed')), statuses.join(' '))
    await page.screenshot({ path: join(SHOTS, 'genesis-explorer-verify.png'), fullPage: true })

    // Explorer: the validation dataset's block shows the training record, with per-layer expert usage.
    const chainD = (await (await fetch(`${server.url}/api/headers?chain=D`)).json()) as { blocks: { cid: string; document: { name: string } }[] }
    const validationBlock = chainD.blocks.find((b) => b.document.name === 'genesis-validation')?.cid
    assert.ok(validationBlock !== undefined, 'chain D holds the generated validation pool')
    await page.goto(`${server.url}/#/explorer/${validationBlock}`)
    const record = page.getByTestId('training-record')
    await record.waitFor({ timeout: 60_000 })
    const arch = genesis.manifest.architecture
    await page.getByTestId('expert-usage').waitFor({ timeout: 60_000 })
    assert.equal(await page.getByTestId('expert-usage-cell').count(), arch.n_layers * arch.n_experts)
    const losses = await page.getByTestId('record-losses').innerText()
    assert.ok(losses.includes(genesis.record.evaluation.heldout.student_chain.toFixed(3)), losses)
    await page.screenshot({ path: join(SHOTS, 'genesis-record.png'), fullPage: true })
  })

  test('a donor gets an expert version accepted on the generated datasets', async () => {
    const donor = await freshPage()
    await donor.goto(`${server.url}/#/wallet`)
    await live(donor)
    await donor.getByTestId('wallet-create').click()
    await donor.locator('[data-testid="wallet-public-key"]').waitFor()
    await donor.goto(`${server.url}/#/donate`)
    await donor.getByTestId('donate-keep-going').check()
    await donor.getByTestId('donate-start').click()
    // keep going: a job whose gain the miner's self-check finds too small is not submitted, the next one is tried
    const outcome = donor.locator('[data-testid="donate-outcome"][data-status="accepted"]')
    try {
      await outcome.waitFor({ timeout: 480_000 })
    } catch (e) {
      await donor.screenshot({ path: join(SHOTS, 'genesis-donate-failed.png'), fullPage: true })
      throw new Error(`no outcome; the Donate view says:\n${await donor.locator('main').innerText()}`, { cause: e })
    }
    await donor.screenshot({ path: join(SHOTS, 'genesis-donate.png'), fullPage: true })
    const improvement = Number(await outcome.getAttribute('data-improvement'))
    const delta = Number(await outcome.getAttribute('data-delta'))
    assert.ok(delta > 0 && improvement >= delta, `improvement ${improvement} >= delta ${delta}`)
  })
})
