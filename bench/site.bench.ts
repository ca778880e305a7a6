/**
 * The site in headless Chromium over a relay serving the devnet `npm start` creates (stories260K,
 * 4 experts per layer, every expert used by every token), each ratio against a baseline measured in
 * the same run and browser:
 *
 * - cold start: prompt sent to first token on a fresh profile (sent as soon as the chain is live, and
 *   again 3 s later as a typing visitor would, the chat view having started the backend meanwhile) (empty IndexedDB: tokenizer, embedding,
 *   routers and experts fetched, verified, loaded), against downloading and SHA-256-checking the same
 *   blocks alone in a page (8 requests in flight, WebCrypto): the goal is at most 1.5;
 * - warm start: the same after a reload (everything from IndexedDB, prompt after the typing pause)
 *   against the typed cold start;
 * - header sync: the client's start to a live, fully verified chain (the page's `data-live-ms`), against fetching the same headers and the
 *   documents they link and hashing them alone in a page;
 * - verify pool: 256 KiB tiles hashed per second by the site's verify pool (Web Workers, WebCrypto)
 *   against one thread's WebCrypto times the number of workers.
 */
import type { Browser, Page } from 'playwright-core'
import { CID } from 'multiformats/cid'
import { CHAIN_IDS } from '../src/chain/header.ts'
import { readUnixfsFile } from '../src/tensor/tiles.ts'
import { storedModel } from '../relay/node/stored-model.ts'
import { CHROMIUM, hasChromium, launchChromium } from '../test/fixtures/browser.ts'
import { sharedData } from '../test/fixtures/shared-data.ts'
import { DevnetNode, PROMPT, buildSiteDist, siteDevnet } from '../test/fixtures/site-devnet.ts'
import { openBenchPage } from './browser.ts'
import { median } from './measure.ts'

const ROUNDS = 3
const TYPING_MS = 3000
const LIVE = '[data-testid="sync-status"][data-phase="live"]'
const DONE = '[data-testid="chat-answer"][data-done="true"]'

/** A fresh profile at `url`; resolves with ms from navigation to a live, verified chain. */
async function openLive(browser: Browser, url: string): Promise<{ page: Page; loadMs: number; syncMs: number; close(): Promise<void> }> {
  const context = await browser.newContext()
  const page = await context.newPage()
  const t = performance.now()
  await page.goto(url)
  await page.locator(LIVE).waitFor({ timeout: 120_000 })
  const loadMs = performance.now() - t
  const syncMs = Number(await page.locator(LIVE).getAttribute('data-live-ms'))
  return { page, loadMs, syncMs, close: () => context.close() }
}

interface FirstToken {
  /** Prompt sent to first token, ms, as the page measured it. */
  readonly total: number
  /** Of which: starting the backend, and the shared blocks (fetch, verify, upload, kernels). */
  readonly backend: number
  readonly shared: number
}

/** Ask and read the page's own first-token time and its breakdown. */
async function firstTokenMs(page: Page): Promise<FirstToken> {
  const n = await page.locator(DONE).count()
  await page.getByTestId('chat-input').fill(PROMPT)
  await page.getByTestId('chat-send').click()
  const answer = page.locator(DONE).nth(n)
  await answer.waitFor({ timeout: 300_000 })
  const ms = async (name: string): Promise<number> => Number(await answer.getAttribute(name))
  return { total: await ms('data-first-token-ms'), backend: await ms('data-backend-ms'), shared: await ms('data-shared-ms') }
}

/** In the page: fetch every CID from the gateway (8 in flight) and SHA-256 it; ms. */
async function downloadAndVerify(page: Page, cids: readonly string[]): Promise<number> {
  return page.evaluate(async (list) => {
    const t = performance.now()
    let next = 0
    // Inline arrows only: tsx names `const f = () => …` with a `__name` helper the page lacks.
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < list.length) {
          const cid = list[next++] as string
          const res = await fetch(`/ipfs/${cid}?format=raw`, { headers: { Accept: 'application/vnd.ipld.raw' }, cache: 'no-store' })
          await crypto.subtle.digest('SHA-256', await res.arrayBuffer())
        }
      })
    )
    return performance.now() - t
  }, [...cids])
}

/** In the page: every chain's headers from /api/headers, then their documents and certificates by CID, hashed; ms. */
async function fetchHeadersAlone(page: Page, links: readonly string[]): Promise<number> {
  return page.evaluate(async ({ chains, links }) => {
    const t = performance.now()
    const pages = await Promise.all(chains.map(async (c) => (await fetch(`/api/headers?chain=${c}&limit=1000`, { cache: 'no-store' })).json() as Promise<{ blocks: { header_hex: string }[] }>))
    for (const p of pages) for (const b of p.blocks) {
      const bytes = new Uint8Array(b.header_hex.length / 2)
      for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(b.header_hex.slice(2 * i, 2 * i + 2), 16)
      await crypto.subtle.digest('SHA-256', bytes)
    }
    await Promise.all(links.map(async (cid) => crypto.subtle.digest('SHA-256', await (await fetch(`/ipfs/${cid}?format=raw`, { cache: 'no-store' })).arrayBuffer())))
    return performance.now() - t
  }, { chains: [...CHAIN_IDS], links: [...links] })
}

export async function run(): Promise<void> {
  if (!hasChromium()) return void console.log(`skipped: ${CHROMIUM} is absent`)
  if (sharedData('stories260K.bin') === null) return void console.log('skipped: ../shared/data/stories260K.bin is absent')
  const dir = await (siteDevnet('dense') as Promise<string>)
  const site = await buildSiteDist()
  const node = new DevnetNode(dir)
  const relay = await node.relay({ siteRoot: site.dir })
  const browser = await launchChromium()
  try {
    // The blocks a cold answer fetches: every block of every payload in the param index, and the tokenizer.
    const model = await storedModel(node.store)
    const get = (cid: CID): Uint8Array | undefined => node.store.getRaw(cid)
    const roots = [...model.blocks.values()].map((b) => b.payload)
    if (model.meta.tokenizer !== null) roots.push(model.meta.tokenizer.payload)
    const cids = roots.flatMap((root) => readUnixfsFile(root, get, 1 << 30).cids.map((c) => c.toString()))
    const bytes = cids.reduce((n, c) => n + (get(CID.parse(c))?.length ?? 0), 0)
    const links: string[] = []
    for (const chain of CHAIN_IDS) for (const b of node.store.headers(chain, 0, Number.MAX_SAFE_INTEGER, 1000)) {
      if (chain !== 'B') links.push(b.header.payload.toString())
      if (b.header.pol !== null) links.push(b.header.pol.toString())
    }
    console.log(`devnet: ${node.store.size} headers; a cold answer fetches ${cids.length} blocks, ${(bytes / 1024).toFixed(0)} KiB (tokenizer, embedding, ${model.architecture.n_layers} routers, ${model.architecture.n_layers * model.architecture.n_experts} experts)`)

    const coldRuns: FirstToken[] = []
    const typedRuns: FirstToken[] = []
    const warmRuns: FirstToken[] = []
    const alone: number[] = []
    const sync: number[] = []
    const load: number[] = []
    const headersAlone: number[] = []
    let backend = ''
    for (let r = 0; r < ROUNDS; r++) {
      const s = await openLive(browser, `${relay.url}/?temperature=0#/chat`)
      sync.push(s.syncMs)
      load.push(s.loadMs)
      coldRuns.push(await firstTokenMs(s.page))
      backend = await s.page.getByTestId('chat-backend').first().innerText().catch(() => '?')
      await s.page.reload()
      await s.page.locator(LIVE).waitFor({ timeout: 120_000 })
      await s.page.waitForTimeout(TYPING_MS)
      warmRuns.push(await firstTokenMs(s.page))
      await s.close()
      // The same cold start for a visitor who takes 3 s to type: the chat view started the backend meanwhile.
      const typed = await openLive(browser, `${relay.url}/?temperature=0#/chat`)
      await typed.page.waitForTimeout(TYPING_MS)
      typedRuns.push(await firstTokenMs(typed.page))
      await typed.close()
      const plain = await browser.newContext()
      const p = await plain.newPage()
      await p.goto(`${relay.url}/favicon.svg`)
      alone.push(await downloadAndVerify(p, cids))
      headersAlone.push(await fetchHeadersAlone(p, links))
      await plain.close()
    }
    const cold = coldRuns.map((r) => r.total)
    const warm = warmRuns.map((r) => r.total)
    const c = median(cold)
    const a = median(alone)
    console.log(`backend: ${backend.trim()}; medians of ${ROUNDS} rounds, each on a fresh browser profile`)
    console.log(`cold start, prompt to first token: ${c.toFixed(0)} ms; download + verify of the same ${cids.length} blocks alone: ${a.toFixed(0)} ms; ratio ${(c / a).toFixed(2)} (goal <= 1.5)`)
    const part = (runs: FirstToken[]): string => `backend ${median(runs.map((r) => r.backend)).toFixed(0)} ms, shared blocks ${median(runs.map((r) => r.shared)).toFixed(0)} ms, experts + prompt ${median(runs.map((r) => r.total - r.backend - r.shared)).toFixed(0)} ms`
    console.log(`  cold first token: ${part(coldRuns)}`)
    const t = median(typedRuns.map((r) => r.total))
    console.log(`cold start, prompt sent ${TYPING_MS / 1000} s after the chain is live (typing; kernels compiled meanwhile): ${t.toFixed(0)} ms to first token; ratio to download + verify alone ${(t / a).toFixed(2)} (goal <= 1.5)`)
    console.log(`  typed cold first token: ${part(typedRuns)}`)
    console.log(`  warm first token: ${part(warmRuns)}`)
    console.log(`what a cold start adds to a warm one (fetching and verifying the blocks, typed runs): ${(t - median(warm)).toFixed(0)} ms; against download + verify alone ${((t - median(warm)) / a).toFixed(2)}`)
    console.log(`warm start (reload, everything from IndexedDB, prompt after the same ${TYPING_MS / 1000} s): ${median(warm).toFixed(0)} ms to first token; warm / cold (both typed) ${(median(warm) / t).toFixed(2)}`)
    console.log(`header sync of ${node.store.size} headers in the client (relay status, headers, every proof and rule checked, caches written): ${median(sync).toFixed(0)} ms; fetching and hashing the same headers and ${links.length} documents alone: ${median(headersAlone).toFixed(0)} ms; ratio ${(median(sync) / median(headersAlone)).toFixed(2)}`)
    console.log(`page navigation to a live, verified chain (page, client worker, verify pool, IndexedDB, sync): ${median(load).toFixed(0)} ms`)
  } finally {
    await browser.close()
    await relay.close()
    node.close()
    site.cleanup()
  }

  const b = await openBenchPage()
  if (b === null) return
  try {
    const cores = await b.page.evaluate(() => window.blyanBench.hardwareConcurrency)
    for (const workers of [...new Set([1, 2, Math.min(8, cores)])]) {
      const p = await b.page.evaluate((spec) => window.blyanBench.verifyPool(spec), { workers, tiles: 64, rounds: 3 })
      const mbps = (tps: number): string => ((tps * 256) / 1024).toFixed(0)
      console.log(`verify pool, ${workers} worker(s) on ${cores} cores: ${mbps(p.poolTilesPerSecond)} MiB/s; one thread's WebCrypto: ${mbps(p.singleTilesPerSecond)} MiB/s; pool / (single x ${workers}) = ${(p.poolTilesPerSecond / (p.singleTilesPerSecond * workers)).toFixed(2)}`)
    }
  } finally {
    await b.close()
  }
}
