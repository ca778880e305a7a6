/**
 * Issue 17, problem 10 (explorer labels) and the block page part of problem 8, in headless Chromium
 * on a devnet from the committed genesis with one version mined and certified through the relay:
 *
 * - chain B's rows have labels of their own (`B:layer0.expert0@v1`, not 37 x `B:0`), and searching a
 *   shown label opens that block;
 * - the search box offers a chain B example, and every example it offers finds a block; `B:3` says
 *   how chain B blocks are named, and what it names works;
 * - chain D's rows name their dataset (a decision the dataset it decides);
 * - a block page says the header's `version` is the header format's, not the expert's;
 * - a certified version's `pol: null` says where its certificate is (CID and the reward linking it),
 *   an initial version's why it has none;
 * - on a 390 x 844 phone the Verify button of a block page is on the first screen, and in lists (and
 *   on a desktop) no CID is clipped or covered by a badge.
 *
 * The selectors are those of the page before these changes too (rows' first span, `.field` rows,
 * `block-verify`), so each assertion fails there for what it checks. Screenshots go to test-results/.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { CID } from 'multiformats/cid'
import type { Locator, Page } from 'playwright-core'
import { randomSecretKey } from '../../src/chain/keys.ts'
import type { AcceptedBlock } from '../../src/chain/view.ts'
import { mineOnce } from '../../src/pol/mining.ts'
import type { Served } from '../../relay/serve.ts'
import { CHROMIUM_MISSING, hasChromium } from '../fixtures/browser.ts'
import { GenesisSite, SHOTS, live } from '../fixtures/genesis-site.ts'
import { until } from '../fixtures/network.ts'
const PHONE = { width: 390, height: 844 } as const

describe('explorer labels and the block page, in Chromium', { skip: hasChromium() ? false : CHROMIUM_MISSING }, () => {
  let site: GenesisSite
  let url: string
  /** The version mined here, certified by the devnet's validators. */
  let certified: AcceptedBlock

  before(async () => {
    site = await GenesisSite.start()
    url = site.url
    // A certified version: a job whose self-check finds no gain, or whose gain the validators find short, is followed by the next.
    const key = randomSecretKey()
    const attempts = new Map<string, number>()
    for (let i = 0; i < 4 && certified === undefined; i++) {
      const r = await mineOnce({ relay: url, key, attempts, pollMs: 250, decisionTimeoutMs: 120_000 })
      attempts.set(r.job.id, r.attempt + 1)
      if (r.outcome?.status === 'accepted') certified = site.served.node.store.get(CID.parse(r.outcome.cid)) as AcceptedBlock
    }
    assert.ok(certified !== undefined && certified.certificate !== null, 'a version was certified')
  })

  after(async () => {
    await site?.close()
  })

  async function open(hash: string, size: { width: number; height: number } = { width: 1280, height: 900 }): Promise<Page> {
    const page = await site.page(size.width, size.height)
    await page.goto(`${url}/${hash}`)
    await live(page)
    return page
  }

  /** A chain's rows once the list holds `count` of them. */
  async function rows(page: Page, chain: string, count: number): Promise<Locator> {
    const list = page.locator(`ul[aria-label^="Chain ${chain} blocks"] > li`)
    await until(`${count} rows on chain ${chain}`, async () => (await list.count()) >= count, 60_000)
    return list
  }

  /** Search from the box, as a user does; the block page it opens, or null if it stays on results. */
  async function searchOpens(page: Page, query: string): Promise<string | null> {
    await page.getByTestId('explorer-search').fill(query)
    await page.getByTestId('explorer-search').press('Enter')
    try {
      await until(`a block page for ${query}`, async () => !page.url().includes('/search/') && (await page.locator('article.detail').isVisible()), 20_000)
    } catch {
      return null
    }
    return decodeURIComponent(new URL(page.url()).hash.replace('#/explorer/', ''))
  }

  const store = (): Served['node']['store'] => site.served.node.store

  test('chain B rows have labels of their own, and searching a shown label opens that block', async () => {
    const page = await open('#/explorer/chain/B')
    const list = await rows(page, 'B', 30)
    const labels = await list.locator('a.row > span:first-child').allInnerTexts()
    assert.ok(labels.length >= 30, `the first page at least: ${labels.length} rows`)
    assert.equal(new Set(labels).size, labels.length, `every row's label differs: ${labels.slice(0, 5).join(', ')} ...`)
    await page.screenshot({ path: join(SHOTS, 'explorer-labels-list-B.png') })
    // The certified version's row and a genesis one: each label opens its own block.
    for (const cid of [certified.cid.toString(), (store().paramIndex().get('layer3.expert7') as AcceptedBlock).cid.toString()]) {
      const row = page.locator(`ul[aria-label^="Chain B blocks"] > li:has(a[href$="${cid}"])`)
      const label = (await row.locator('a.row > span:first-child').innerText()).trim()
      assert.equal(await searchOpens(page, label), cid, `searching ${label} opens its block`)
      await page.goto(`${url}/#/explorer/chain/B`)
      await rows(page, 'B', 30)
    }
  })

  test('the search box offers a chain B example; every example it offers finds a block; B:3 says what works', async () => {
    const page = await open('#/explorer/chain/A')
    const placeholder = (await page.getByTestId('explorer-search').getAttribute('placeholder')) ?? ''
    const examples = placeholder.match(/\b[A-D]:[^\s,()]+/g) ?? []
    assert.ok(examples.some((e) => e.startsWith('B:')), `a chain B example in "${placeholder}"`)
    for (const example of examples) assert.notEqual(await searchOpens(page, example), null, `the example ${example} opens a block`)
    // A chain B height finds nothing here (the DAG is 1 deep); the page says how chain B is named, and that works.
    await page.getByTestId('explorer-search').fill('B:3')
    await page.getByTestId('explorer-search').press('Enter')
    const nothing = page.getByText('Nothing matches')
    await nothing.waitFor({ timeout: 30_000 })
    const said = await page.locator('main').innerText()
    const offered = said.match(/\bB:[a-z][\w.]*@v\d+/)?.[0]
    assert.ok(offered !== undefined, `the page names a chain B block as search takes it: ${said.slice(0, 600)}`)
    assert.notEqual(await searchOpens(page, offered), null, `${offered} opens a block`)
  })

  test('chain D rows name their dataset; a dataset name finds its blocks', async () => {
    const page = await open('#/explorer/chain/D')
    const list = await rows(page, 'D', 4)
    const text = (await list.allInnerTexts()).join('\n')
    assert.match(text, /genesis-train/, text)
    assert.match(text, /genesis-validation/, text)
    assert.equal((await list.filter({ hasText: 'genesis-train' }).count()), 2, 'the dataset and the decision on it')
    await page.screenshot({ path: join(SHOTS, 'explorer-labels-list-D.png') })
    await page.getByTestId('explorer-search').fill('genesis-train')
    await page.getByTestId('explorer-search').press('Enter')
    const found = page.locator('ul[aria-label="Blocks matching genesis-train"] > li')
    await until('results for genesis-train', async () => (await found.count()) === 2, 30_000)
    assert.deepEqual((await found.allInnerTexts()).map((t) => /genesis-train/.test(t)), [true, true])
  })

  test('a block page: the header\'s version is the format\'s, not the expert\'s; a null pol says where the certificate is', async () => {
    const certCid = (certified.certificate as NonNullable<AcceptedBlock['certificate']>).cid
    const cert = certCid.toString()
    const reward = store().headers('C', 0, Number.MAX_SAFE_INTEGER, 10_000).find((b) => b.header.pol?.equals(certCid) === true) as AcceptedBlock
    assert.ok(reward !== undefined, 'the reward that links the certificate')
    const page = await open(`#/explorer/${certified.cid}`)
    await page.locator('[data-testid="block-certificate"]').waitFor({ timeout: 60_000 })
    const header = page.locator('article.detail section:has(h4:text-is("Header"))')
    const field = (name: string): Locator => header.locator(`.field:has(dt:text-is("${name}")) dd`)
    const version = await field('version').innerText()
    assert.match(version, /header format/i, `version: ${version}`)
    assert.match(version, new RegExp(`expert version v${certified.expertVersion}`), `version: ${version}`)
    const pol = await field('pol').innerText()
    assert.match(pol, /certificate/i, `pol: ${pol}`)
    assert.ok(await field('pol').locator(`[title="${cert}"]`).count() > 0, `pol names the certificate ${cert}: ${pol}`)
    assert.ok(await field('pol').locator(`a[href$="${reward.cid}"]`).count() > 0, 'pol links the reward that links the certificate')
    await page.screenshot({ path: join(SHOTS, 'explorer-labels-block.png'), fullPage: true })
    // An initial version: why it has no certificate.
    const genesis = store().paramIndex().get('layer3.expert7') as AcceptedBlock
    await page.goto(`${url}/#/explorer/${genesis.cid}`)
    await page.locator('article.detail').waitFor()
    assert.match(await field('pol').innerText(), /initial version has no PoL certificate/)
    assert.match(await field('version').innerText(), /expert version v0/)
  })

  test('on a 390 x 844 phone, Verify is on the first screen of a block page; list CIDs are whole, beside badges not under them', async () => {
    const page = await open(`#/explorer/${certified.cid}`, PHONE)
    const verify = page.getByTestId('block-verify')
    await verify.waitFor({ timeout: 60_000 })
    const box = await verify.boundingBox()
    assert.ok(box !== null && box.y + box.height <= PHONE.height, `the Verify button at y = ${box?.y} on an ${PHONE.height} px screen`)
    await page.screenshot({ path: join(SHOTS, 'explorer-labels-block-phone.png') })
    for (const size of [PHONE, { width: 1280, height: 900 }]) {
      const p = size === PHONE ? page : await open('#/explorer/chain/B', size)
      // Every expert's versions (badges: PoL certified, superseded) and chain D's named rows.
      for (const hash of ['#/explorer/search/layer0', '#/explorer/chain/D']) {
        await p.goto(`${url}/${hash}`)
        const list = p.locator('main ul[aria-label] > li')
        await until(`rows for ${hash}`, async () => (await list.count()) >= 4, 60_000)
        // No named functions inside: tsx's keepNames would wrap them in a helper the page lacks.
        const problems = await list.evaluateAll((items) => {
          const out: string[] = []
          for (const li of items) {
            const cid = li.querySelector('.cid') as HTMLElement | null
            if (cid === null) continue
            const c = cid.getBoundingClientRect()
            const row = li.getBoundingClientRect()
            if (cid.scrollWidth > cid.clientWidth + 1) out.push(`${cid.textContent}: clipped (${cid.scrollWidth} > ${cid.clientWidth})`)
            if (c.right > row.right + 0.5 || c.left < row.left - 0.5) out.push(`${cid.textContent}: outside its row`)
            for (const other of li.querySelectorAll('.badge, .title, a.row > span:first-child, time')) {
              const o = other.getBoundingClientRect()
              if (c.left < o.right - 0.5 && o.left < c.right - 0.5 && c.top < o.bottom - 0.5 && o.top < c.bottom - 0.5) out.push(`${cid.textContent} under "${other.textContent}"`)
            }
          }
          return out
        })
        assert.deepEqual(problems, [], `${hash} at ${size.width} px`)
        if (size === PHONE) await p.screenshot({ path: join(SHOTS, `explorer-labels-phone-${hash.includes('search') ? 'search' : 'list-D'}.png`) })
      }
    }
  })
})
