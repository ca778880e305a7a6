/**
 * The site in headless Chromium (WebGPU on SwiftShader), built by vite and served by a relay over a
 * real devnet (the one `npm start` creates: stories260K, 4 experts per layer):
 *
 * - Chat: a prompt at `?temperature=0&backend=webgpu` gives the tokens `blyan generate --backend cpu` gives, and the
 *   answer lists its experts; after a reload a second answer fetches no tile (counted at the relay).
 * - Explorer: search an expert, open its block, Verify passes every step, its tile's Merkle path included.
 * - A lying relay (test mode: it alters one tile): with an honest relay too, the page rejects the
 *   altered bytes, answers from the honest relay, and names the liar; alone, the chat refuses the
 *   expert and says why.
 * - Served by a plain static host (no COOP/COEP) with `?relay=URL`: sync and chat work across origins.
 * - A dead relay: the page says so, and recovers when it comes back.
 *
 * Screenshots of chat, block detail and DAG view go to test-results/ (not committed).
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { extname, join, normalize } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import type { Page } from 'playwright-core'
import { CID } from 'multiformats/cid'
import { decodeHeader } from '../../src/chain/header.ts'
import { CHROMIUM_MISSING, FreshProfiles, hasChromium } from '../fixtures/browser.ts'
import { SHARED_DATA_MISSING } from '../fixtures/shared-data.ts'
import { DevnetNode, PROMPT, buildSiteDist, siteDevnet, type RunningRelay } from '../fixtures/site-devnet.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const BIN = join(ROOT, 'bin/blyan.js')
const SHOTS = join(ROOT, 'test-results')
const ANSWER_DONE = '[data-testid="chat-answer"][data-done="true"]'

const dirP = siteDevnet('dense')
const skip = dirP === null ? SHARED_DATA_MISSING : !hasChromium() ? CHROMIUM_MISSING : false

/** What `blyan generate --backend cpu --json` answers (default sampling options are the chat's defaults but temperature). */
function cliGenerate(dir: string, prompt: string): { text: string; tokens: number[] } {
  const r = spawnSync(process.execPath, [BIN, 'generate', '--data', dir, '--prompt', prompt, '--backend', 'cpu', '--temperature', '0', '--json'], { encoding: 'utf8', timeout: 300_000 })
  assert.equal(r.status, 0, r.stderr)
  return JSON.parse(r.stdout) as { text: string; tokens: number[] }
}

async function ask(page: Page, prompt: string): Promise<{ text: string; tokens: number[] }> {
  const before = await page.locator(ANSWER_DONE).count()
  await page.getByTestId('chat-input').fill(prompt)
  await page.getByTestId('chat-send').click()
  await page.locator(ANSWER_DONE).nth(before).waitFor({ timeout: 180_000 })
  const answer = page.getByTestId('chat-answer').nth(before)
  const tokens = ((await answer.getAttribute('data-tokens')) ?? '').split(',').filter((t) => t !== '').map(Number)
  // The answer's own text, without the prompt's last words the page shows before a continuation.
  const text = await answer.evaluate((el) => [...el.childNodes].filter((n) => !(n instanceof HTMLElement && n.dataset['testid'] === 'chat-continues')).map((n) => n.textContent ?? '').join(''))
  return { text, tokens }
}

/** Wait until the page's sync is live (the status strip says so). */
async function live(page: Page): Promise<void> {
  await page.locator('[data-testid="sync-status"][data-phase="live"]').waitFor({ timeout: 60_000 })
}

describe('site in Chromium', { skip }, () => {
  let node: DevnetNode
  let honest: RunningRelay
  let site: { dir: string; cleanup(): void }
  let profiles: FreshProfiles | undefined
  let devnetDir: string

  const freshPage = (width?: number, height?: number): Promise<Page> => (profiles as FreshProfiles).page(width, height)

  before(async () => {
    devnetDir = await (dirP as Promise<string>)
    site = await buildSiteDist()
    node = new DevnetNode(devnetDir)
    honest = await node.relay({ siteRoot: site.dir })
    profiles = await FreshProfiles.launch()
    mkdirSync(SHOTS, { recursive: true })
  })

  after(async () => {
    await profiles?.close()
    await honest?.close()
    node?.close()
    site?.cleanup()
  })

  test('chat at temperature 0 = blyan generate --backend cpu; experts listed; after a reload no tile is fetched', async () => {
    const expected = cliGenerate(devnetDir, PROMPT)
    const page = await freshPage()
    // Our WebGPU kernels against the CPU reference, token for token (the automatic choice may take ORT WASM).
    await page.goto(`${honest.url}/?temperature=0&backend=webgpu#/chat`)
    await live(page)
    const first = await ask(page, PROMPT)
    assert.deepEqual(first.tokens, expected.tokens)
    // The same text, cut back to a clean end where the token limit stopped it mid-sentence.
    const shown = first.text.trim().replace(/…$/, '')
    assert.ok(shown.length > 0 && expected.text.trim().startsWith(shown), `${JSON.stringify(shown)} starts ${JSON.stringify(expected.text)}`)
    const experts = page.getByTestId('chat-experts').first()
    await experts.locator('summary').click()
    const listed = await experts.innerText()
    for (const name of ['layer0.expert0', 'layer4.expert3']) assert.ok(listed.includes(name), `${name} in ${listed}`)
    assert.ok((await experts.locator('a[href^="#/explorer/"]').count()) >= 20, 'each expert links to its block in the explorer')
    await page.screenshot({ path: join(SHOTS, 'chat.png'), fullPage: true })

    const tilesBefore = (await honest.stats()).tiles
    await page.reload()
    await live(page)
    // The reload reopens the conversation; a new chat asks the prompt alone again.
    await page.getByRole('button', { name: 'New chat' }).click()
    const second = await ask(page, PROMPT)
    assert.deepEqual(second.tokens, expected.tokens)
    assert.equal((await honest.stats()).tiles, tilesBefore, 'the reloaded page fetched no tile from the relay')

    const phone = await freshPage(375, 812)
    await phone.goto(`${honest.url}/?temperature=0#/chat`)
    await live(phone)
    await ask(phone, PROMPT)
    await phone.screenshot({ path: join(SHOTS, 'chat-phone.png'), fullPage: true })
  })

  test('explorer: search an expert, open its block, Verify passes every step with a tile Merkle path', async () => {
    const page = await freshPage()
    await page.goto(`${honest.url}/#/explorer`)
    await live(page)
    await page.getByTestId('explorer-search').fill('layer2.expert1')
    await page.getByTestId('explorer-search').press('Enter')
    const cid = node.store.paramIndex().get('layer2.expert1')?.cid.toString() as string
    await page.locator(`a[href="#/explorer/${cid}"]`).first().click()
    await page.getByTestId('block-verify').click()
    const result = page.getByTestId('verify-result')
    await result.waitFor({ timeout: 60_000 })
    await page.locator('[data-testid="verify-result"][data-ok]').waitFor()
    assert.equal(await result.getAttribute('data-ok'), 'true', await page.locator('main').innerText())
    const steps = page.locator('[data-testid="verify-step"]')
    const statuses = await steps.evaluateAll((els) => els.map((e) => `${e.getAttribute('data-step')}:${e.getAttribute('data-status')}`))
    for (const id of ['cid', 'pow', 'signature', 'anchor', 'rules', 'pol', 'tile-root', 'tile-leaf']) assert.ok(statuses.includes(`${id}:passed`), `${id} passed in ${statuses.join(' ')}`)
    assert.ok(statuses.every((s) => s.endsWith(':passed')), statuses.join(' '))
    await page.screenshot({ path: join(SHOTS, 'explorer-block.png'), fullPage: true })

    await page.goto(`${honest.url}/#/explorer/dag`)
    await page.locator('[data-testid="dag-view"] svg').waitFor({ timeout: 30_000 })
    assert.ok((await page.locator('[data-testid="dag-view"] a').count()) >= 20, 'a node per chain B block')
    await page.screenshot({ path: join(SHOTS, 'explorer-dag.png'), fullPage: true })
  })

  /** The payload of an expert every answer uses (top-k is all experts): what a lying relay alters. */
  function lieTarget(): { name: string; payload: CID } {
    const block = node.store.paramIndex().get('layer0.expert0')
    assert.ok(block !== undefined)
    return { name: 'layer0.expert0', payload: decodeHeader(block.bytes).payload }
  }

  test('a lying relay beside an honest one: altered bytes rejected, the answer comes from the honest relay, the liar is named', async () => {
    const target = lieTarget()
    const liar = await node.relay({ lieAbout: [target.payload] })
    try {
      const page = await freshPage()
      await page.goto(`${honest.url}/?temperature=0&relay=${encodeURIComponent(liar.url)}&relay=${encodeURIComponent(honest.url)}#/chat`)
      await live(page)
      const a = await ask(page, PROMPT)
      assert.deepEqual(a.tokens, cliGenerate(devnetDir, PROMPT).tokens)
      const notice = page.locator('[data-testid="relay-notice"]', { hasText: liar.url })
      await notice.waitFor({ timeout: 10_000 })
      assert.match(await notice.innerText(), /lied/)
      assert.ok((await notice.innerText()).includes(target.name))
      await page.screenshot({ path: join(SHOTS, 'lying-relay.png'), fullPage: true })
    } finally {
      await liar.close()
    }
  })

  test('only the lying relay: the chat refuses to run the expert and says why', async () => {
    const target = lieTarget()
    const liar = await node.relay({ lieAbout: [target.payload] })
    try {
      const page = await freshPage()
      await page.goto(`${honest.url}/?temperature=0&relay=${encodeURIComponent(liar.url)}#/chat`)
      await live(page)
      await page.getByTestId('chat-input').fill(PROMPT)
      await page.getByTestId('chat-send').click()
      const failure = page.getByTestId('chat-failure')
      await failure.waitFor({ timeout: 120_000 })
      const text = await failure.innerText()
      assert.ok(text.includes(target.name), text)
      assert.ok(text.includes(liar.url), text)
      assert.match(text, /do not match/)
      await page.screenshot({ path: join(SHOTS, 'lying-relay-alone.png'), fullPage: true })
    } finally {
      await liar.close()
    }
  })

  test('served by a plain static host (no COOP/COEP), with the relay given as ?relay=URL: sync and chat work across origins', async () => {
    const types: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm', '.svg': 'image/svg+xml', '.json': 'application/json' }
    const server = createServer((req, res) => {
      const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(/^([/\\])+/, '')
      const file = join(site.dir, path === '' ? 'index.html' : path)
      if (!file.startsWith(site.dir) || !existsSync(file) || !statSync(file).isFile()) {
        res.writeHead(404).end()
        return
      }
      res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' })
      res.end(readFileSync(file))
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const { port } = server.address() as AddressInfo
      const page = await freshPage()
      await page.goto(`http://127.0.0.1:${port}/?temperature=0&relay=${encodeURIComponent(honest.url)}#/chat`)
      await live(page)
      assert.equal(await page.evaluate(() => crossOriginIsolated), false)
      const a = await ask(page, PROMPT)
      assert.ok(a.tokens.length > 0 && a.text.length > 0)
      assert.ok((await page.getByTestId('chat-experts').first().locator('a').count()) >= 20)
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  })

  test('a dead relay: the page says so and recovers when it comes back', async () => {
    const relay = await node.relay()
    let back: RunningRelay | null = null
    try {
      const page = await freshPage()
      await page.goto(`${honest.url}/?relay=${encodeURIComponent(relay.url)}#/chat`)
      await live(page)
      await relay.close()
      const down = page.locator('[data-testid="relay-notice"]', { hasText: relay.url })
      await down.waitFor({ timeout: 30_000 })
      assert.match(await down.innerText(), /unreachable/)
      await page.screenshot({ path: join(SHOTS, 'dead-relay.png') })
      back = await node.relay({ port: relay.port })
      await down.waitFor({ state: 'detached', timeout: 60_000 })
      await live(page)
    } finally {
      await back?.close()
    }
  })
})
