/**
 * The site in headless Chromium over a relay serving the devnet `npm start` creates (stories260K,
 * 4 experts per layer, every expert used by every token), each ratio against a baseline measured in
 * the same run and browser:
 *
 * - cold start: prompt sent to first token on a fresh profile (empty IndexedDB: tokenizer, embedding,
 *   routers and experts fetched, verified, loaded), against downloading and SHA-256-checking the same
 *   blocks alone in a page (8 requests in flight, WebCrypto): the goal is at most 1.5;
 * - warm start: the same after a reload (everything from IndexedDB) against cold;
 * - header sync: page load to a live, fully verified chain, against fetching the same headers and the
 *   documents they link and hashing them alone in a page;
 * - verify pool: 256 KiB tiles hashed per second by the site's verify pool (Web Workers, WebCrypto)
 *   against one thread's WebCrypto times the number of workers.
 */
import type { Browser, Page } from 'playwright-core'
import { CID } from 'multiformats/cid'
import { CHAIN_IDS } from '../src/chain/header.ts'
import { readUnixfsFile } from '../src/tensor/tiles.ts'
import { storedModel } from '../relay/model.ts'
import { CHROMIUM, hasChromium, launchChromium } from '../test/fixtures/browser.ts'
import { sharedData } from '../test/fixtures/shared-data.ts'
import { DevnetNode, PROMPT, buildSiteDist, siteDevnet } from '../test/fixtures/site-devnet.ts'
import { openBenchPage } from './browser.ts'
import { median } from './measure.ts'

const ROUNDS = 3
const LIVE = '[data-testid="sync-status"][data-phase="live"]'
const DONE = '[data-testid="chat-answer"][data-done="true"]'

/** A fresh profile at `url`; resolves with ms from navigation to a live, verified chain. */
async function openLive(browser: Browser, url: string): Promise<{ page: Page; syncMs: number; close(): Promise<void> }> {
  const context = await browser.newContext()
  const page = await context.newPage()
  const t = performance.now()
  await page.goto(url)
  await page.locator(LIVE).waitFor({ timeout: 120_000 })
  return { page, syncMs: performance.now() - t, close: () => context.close() }
}

/** Ask and read the page's own first-token time (prompt sent to first token, ms). */
async function firstTokenMs(page: Page): Promise<number> {
  const n = await page.locator(DONE).count()
  await page.getByTestId('chat-input').fill(PROMPT)
  await page.getByTestId('chat-send').click()
  const answer = page.locator(DONE).nth(n)
  await answer.waitFor({ timeout: 300_000 })
  return Number(await answer.getAttribute('data-first-token-ms'))
}

/** In the page: fetch every CID from the gateway (8 in flight) and SHA-256 it; ms. */
async function downloadAndVerify(page: Page, cids: readonly string[]): Promise<number> {
  return page.evaluate(async (list) => {
    const t = performance.now()
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < list.length) {
        const cid = list[next++] as string
        const res = await fetch(`/ipfs/${cid}?format=raw`, { headers: { Accept: 'application/vnd.ipld.raw' }, cache: 'no-store' })
        await crypto.subtle.digest('SHA-256', await res.arrayBuffer())
      }
    }
    await Promise.all(Array.from({ length: 8 }, worker))
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

    const cold: number[] = []
    const warm: number[] = []
    const alone: number[] = []
    const sync: number[] = []
    const headersAlone: number[] = []
    let backend = ''
    for (let r = 0; r < ROUNDS; r++) {
      const s = await openLive(browser, `${relay.url}/?temperature=0#/chat`)
      sync.push(s.syncMs)
      cold.push(await firstTokenMs(s.page))
      backend = await s.page.getByTestId('chat-backend').first().innerText().catch(() => '?')
      await s.page.reload()
      await s.page.locator(LIVE).waitFor({ timeout: 120_000 })
      warm.push(await firstTokenMs(s.page))
      await s.close()
      const plain = await browser.newContext()
      const p = await plain.newPage()
      await p.goto(`${relay.url}/favicon.svg`)
      alone.push(await downloadAndVerify(p, cids))
      headersAlone.push(await fetchHeadersAlone(p, links))
      await plain.close()
    }
    const c = median(cold)
    const a = median(alone)
    console.log(`backend: ${backend.trim()}; medians of ${ROUNDS} rounds, each on a fresh browser profile`)
    console.log(`cold start, prompt to first token: ${c.toFixed(0)} ms; download + verify of the same ${cids.length} blocks alone: ${a.toFixed(0)} ms; ratio ${(c / a).toFixed(2)} (goal <= 1.5)`)
    console.log(`warm start (reload, IndexedDB) to first token: ${median(warm).toFixed(0)} ms; warm / cold ${(median(warm) / c).toFixed(2)}`)
    console.log(`header sync, page load to ${node.store.size} verified headers: ${median(sync).toFixed(0)} ms; fetching and hashing the same headers and ${links.length} documents alone: ${median(headersAlone).toFixed(0)} ms; ratio ${(median(sync) / median(headersAlone)).toFixed(2)}`)
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
