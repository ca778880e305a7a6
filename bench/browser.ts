/**
 * The bench page (test/browser/bench/) in headless Chromium, for bench/gemv.bench.ts and
 * bench/decode.bench.ts: built once per process with vite, served with the site's static handler
 * (COOP/COEP, so ORT's wasm may use threads), driven through `window.blyanBench`.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Browser, Page } from 'playwright-core'
import { createStaticHandler } from '../relay/http/static.ts'
import { CHROMIUM, buildPage, hasChromium, launchChromium, newPage } from '../test/fixtures/browser.ts'

export interface BenchPage {
  readonly page: Page
  close(): Promise<void>
}

let built: Promise<{ dir: string; cleanup(): void }> | null = null

/** The page, ready; null (after printing why) when there is no Chromium. Close it when done. */
export async function openBenchPage(): Promise<BenchPage | null> {
  if (!hasChromium()) {
    console.log(`skipped: ${CHROMIUM} is absent (apt-get install chromium, or set BLYAN_CHROMIUM)`)
    return null
  }
  built ??= buildPage('bench').then((s) => {
    process.once('exit', s.cleanup) // rmSync: safe in an exit handler
    return s
  })
  const site = await built
  const handler = createStaticHandler({ root: site.dir })
  const server: Server = createServer((req, res) => void handler(req, res))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
  let browser: Browser | null = null
  try {
    browser = await launchChromium()
    const page = await newPage(browser, process.env['BENCH_PAGE_LOG'] === '1')
    page.setDefaultTimeout(0)
    await page.goto(url)
    await page.waitForFunction(() => window.blyanBench?.ready === true)
    const b = browser
    return {
      page,
      async close() {
        await b.close()
        await new Promise<void>((resolve) => server.close(() => resolve()))
      }
    }
  } catch (e) {
    await browser?.close()
    server.close()
    throw e
  }
}
