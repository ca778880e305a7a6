/**
 * The relay over real HTTP: submissions, every rule refused with its reason and the store left
 * unchanged, the trustless gateway, the JSON API, CORS, the rate limit and the /ws feed.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { CarReader } from '@ipld/car'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import WebSocket from 'ws'
import { publicKeyOf } from '../../src/chain/keys.ts'
import type { ChainStore } from '../../relay/node/interface.ts'
import { FullNode } from '../../relay/node/full-node.ts'
import { createRelay, type Relay } from '../../relay/http/server.ts'
import { openChainStore } from '../../relay/node/chain-store.ts'
import { badSubmissions, freshDataset } from '../fixtures/bad-submissions.ts'
import { Devnet, NOW, submissionCar, type Built } from '../fixtures/devnet.ts'

const CAR = 'application/vnd.ipld.car'

interface Running {
  readonly relay: Relay
  readonly store: ChainStore
  readonly node: FullNode
  readonly url: string
  close(): Promise<void>
}

const dirs: string[] = []
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })))

async function startRelay(options: { rateLimit?: { burst: number; perSecond: number } } = {}): Promise<Running> {
  const dir = mkdtempSync(join(tmpdir(), 'blyan-relay-'))
  dirs.push(dir)
  const store = openChainStore(join(dir, 'chain.sqlite'))
  const node = new FullNode(store, { now: () => NOW })
  const relay = createRelay({ node, version: 'test', ...(options.rateLimit === undefined ? {} : { rateLimit: options.rateLimit }) })
  await new Promise<void>((resolve) => relay.server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(relay.server.address() as AddressInfo).port}`
  return { relay, store, node, url, close: async () => { await relay.close(); store.close() } }
}

async function post(url: string, car: Uint8Array): Promise<{ status: number; body: { accepted?: { cid: string }; error?: { code: string; field?: string; transient?: boolean } } }> {
  const res = await fetch(`${url}/api/blocks`, { method: 'POST', headers: { 'Content-Type': CAR }, body: car as Uint8Array<ArrayBuffer> })
  return { status: res.status, body: (await res.json()) as never }
}

let d: Devnet
let r: Running

before(async () => {
  d = await Devnet.standard()
  r = await startRelay()
  for (const built of d.built.values()) {
    const { status, body } = await post(r.url, await submissionCar(built))
    assert.equal(status, 201, JSON.stringify(body))
  }
})
after(async () => r.close())

describe('submissions over HTTP', () => {
  test('the standard devnet is accepted block by block and the relay agrees with the reference chain', async () => {
    const status = (await (await fetch(`${r.url}/api/status`)).json()) as { genesis: string; heads: Record<string, { cid: string } | null>; blocks: number }
    assert.equal(status.blocks, d.chain.size)
    assert.equal(status.genesis, d.cid('genesis').toString())
    for (const chain of ['A', 'C', 'D'] as const) assert.equal(status.heads[chain]?.cid, d.chain.head(chain)?.cid.toString(), chain)
    const again = await post(r.url, await submissionCar(d.built.get('embedding') as Built))
    assert.equal(again.status, 201, 'a resubmission is accepted, not an error')
  })

  test('every rule a submission can break gets 4xx with its code, and the store content hash never changes', async () => {
    const before = r.store.contentHash()
    const cases = await badSubmissions(d)
    assert.ok(cases.length >= 50, `${cases.length} cases`)
    for (const c of cases) {
      const { status, body } = await post(r.url, c.car)
      const expected = c.code === 'E_TOO_LARGE' ? 413 : c.code === 'E_CAR' ? 400 : 422
      assert.equal(status, expected, `${c.what}: ${JSON.stringify(body)}`)
      assert.equal(body.error?.code, c.code, `${c.what}: ${JSON.stringify(body)}`)
      assert.equal(typeof body.error?.field, 'string')
      assert.equal(r.store.contentHash(), before, `${c.what} changed the store`)
    }
    const rejections = (await (await fetch(`${r.url}/api/rejections?limit=1000`)).json()) as { rejections: { code: string }[] }
    const transient = new Set(['E_UNKNOWN_DEP', 'E_FUTURE'])
    assert.equal(rejections.rejections.length, cases.filter((c) => !transient.has(c.code)).length)
  })

  test('wrong content type, oversized and non-POST requests are refused', async () => {
    const res = await fetch(`${r.url}/api/blocks`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' })
    assert.equal(res.status, 415)
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'UNSUPPORTED_MEDIA_TYPE')
    const small = await startRelay()
    const tiny = createRelay({ node: small.node, version: 'test', uploads: { maxSubmissionBytes: 100 } })
    await new Promise<void>((resolve) => tiny.server.listen(0, '127.0.0.1', resolve))
    const big = await fetch(`http://127.0.0.1:${(tiny.server.address() as AddressInfo).port}/api/blocks`, { method: 'POST', headers: { 'Content-Type': CAR }, body: new Uint8Array(1000) as Uint8Array<ArrayBuffer> })
    assert.equal(big.status, 413)
    await tiny.close()
    await small.close()
    const get = await fetch(`${r.url}/api/blocks`)
    assert.equal(get.status, 405)
    assert.equal(get.headers.get('allow'), 'POST')
  })
})

describe('trustless gateway', () => {
  test('raw blocks by ?format=raw and by Accept, with immutable caching', async () => {
    const cid = d.cid('genesis')
    for (const init of [{ url: `${r.url}/ipfs/${cid}?format=raw` }, { url: `${r.url}/ipfs/${cid}`, headers: { Accept: 'application/vnd.ipld.raw' } }]) {
      const res = await fetch(init.url, init.headers === undefined ? {} : { headers: init.headers })
      assert.equal(res.status, 200)
      assert.equal(res.headers.get('content-type'), 'application/vnd.ipld.raw')
      assert.match(res.headers.get('cache-control') ?? '', /immutable/)
      assert.equal(res.headers.get('etag'), `"${cid}.raw"`)
      const bytes = new Uint8Array(await res.arrayBuffer())
      assert.ok(CID.createV1(0x71, await sha256.digest(bytes)).equals(cid))
    }
  })

  test('CARs of a UnixFS payload (entity), a header alone (block) and a header with its history (all)', async () => {
    const expert = d.built.get('expert0.0v1') as Built
    const payloadCid = expert.sealed.header.payload
    const read = async (url: string): Promise<{ roots: CID[]; cids: string[] }> => {
      const res = await fetch(url, { headers: { Accept: CAR } })
      assert.equal(res.status, 200, url)
      assert.match(res.headers.get('content-type') ?? '', /^application\/vnd\.ipld\.car; version=1/)
      const reader = await CarReader.fromBytes(new Uint8Array(await res.arrayBuffer()))
      const cids: string[] = []
      for await (const { cid, bytes } of reader.blocks()) {
        assert.ok(CID.createV1(cid.code, await sha256.digest(bytes)).equals(cid), 'every CID recomputes')
        cids.push(cid.toString())
      }
      return { roots: await reader.getRoots(), cids }
    }
    const file = await read(`${r.url}/ipfs/${payloadCid}?dag-scope=entity`)
    assert.ok(file.roots[0]?.equals(payloadCid))
    assert.equal(file.cids[0], payloadCid.toString())
    const alone = await read(`${r.url}/ipfs/${expert.sealed.cid}?format=car&dag-scope=block`)
    assert.deepEqual(alone.cids, [expert.sealed.cid.toString()])
    const all = await read(`${r.url}/ipfs/${expert.sealed.cid}?format=car`)
    for (const name of ['genesis', 'expert0.0']) assert.ok(all.cids.includes(d.cid(name).toString()), `history holds ${name}`)
    assert.equal(new Set(all.cids).size, all.cids.length, 'no duplicates')
  })

  test('probe, unknown CIDs, bad requests, HEAD and CORS', async () => {
    const probe = await fetch(`${r.url}/ipfs/bafkqaaa?format=raw`)
    assert.equal(probe.status, 200)
    assert.equal((await probe.arrayBuffer()).byteLength, 0)
    assert.equal(probe.headers.get('access-control-allow-origin'), '*')
    const unknown = CID.createV1(0x55, await sha256.digest(new TextEncoder().encode('nobody stored this')))
    assert.equal((await fetch(`${r.url}/ipfs/${unknown}?format=raw`)).status, 404)
    assert.equal((await fetch(`${r.url}/ipfs/not-a-cid?format=raw`)).status, 400)
    assert.equal((await fetch(`${r.url}/ipfs/${d.cid('genesis')}?format=json`)).status, 400)
    assert.equal((await fetch(`${r.url}/ipfs/${d.cid('genesis')}/sub/path?format=raw`)).status, 400)
    const html = await fetch(`${r.url}/ipfs/${d.cid('genesis')}`, { headers: { Accept: 'text/html' } })
    assert.equal(html.status, 406)
    const head = await fetch(`${r.url}/ipfs/${d.cid('genesis')}?format=raw`, { method: 'HEAD' })
    assert.equal(head.status, 200)
    assert.equal(Number(head.headers.get('content-length')), (d.built.get('genesis') as Built).sealed.bytes.length)
    const options = await fetch(`${r.url}/ipfs/${d.cid('genesis')}`, { method: 'OPTIONS' })
    assert.equal(options.status, 204)
    assert.match(options.headers.get('access-control-allow-methods') ?? '', /GET/)
    assert.equal((await fetch(`${r.url}/ipfs/${d.cid('genesis')}?format=raw`, { method: 'POST' })).status, 405)
  })

  test('bytes of a refused submission are never served', async () => {
    const refused = await freshDataset(d, 'refused-later')
    const tampered = refused.car.slice()
    tampered[tampered.length - 1] = (tampered[tampered.length - 1] as number) ^ 1
    assert.equal((await post(r.url, tampered)).status, 400)
    assert.equal((await fetch(`${r.url}/ipfs/${refused.built.sealed.cid}?format=raw`)).status, 404)
  })

  test('a client over its rate gets 429 with Retry-After', async () => {
    const limited = await startRelay({ rateLimit: { burst: 5, perSecond: 0.5 } })
    const statuses: number[] = []
    for (let i = 0; i < 7; i++) statuses.push((await fetch(`${limited.url}/ipfs/bafkqaaa?format=raw`)).status)
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429, 429])
    const res = await fetch(`${limited.url}/api/status`)
    assert.equal(res.status, 429)
    assert.ok(Number(res.headers.get('retry-after')) >= 1)
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'RATE_LIMITED')
    await limited.close()
  })
})

describe('JSON API', () => {
  const json = async (path: string): Promise<{ status: number; body: Record<string, unknown> }> => {
    const res = await fetch(`${r.url}${path}`)
    assert.equal(res.headers.get('access-control-allow-origin'), '*')
    return { status: res.status, body: (await res.json()) as Record<string, unknown> }
  }

  test('headers by chain and height range, with the bytes to verify', async () => {
    const { body } = await json('/api/headers?chain=B&from=1&to=1')
    const blocks = body['blocks'] as { cid: string; header_hex: string; header: { index: number } }[]
    assert.deepEqual(blocks.map((b) => b.cid), [d.cid('expert0.0v1').toString()])
    for (const b of blocks) assert.ok(CID.createV1(0x71, await sha256.digest(Buffer.from(b.header_hex, 'hex'))).equals(CID.parse(b.cid)))
    const a = await json('/api/headers?chain=D&limit=1')
    assert.equal((a.body['blocks'] as unknown[]).length, 1)
    assert.equal((await json('/api/headers?chain=X')).status, 400)
    assert.equal((await json('/api/headers?chain=A&from=-1')).status, 400)
  })

  test('a block by CID with its status: accepted, rejected, unknown', async () => {
    const accepted = await json(`/api/blocks/${d.cid('reward')}`)
    assert.equal(accepted.body['status'], 'accepted')
    assert.equal((accepted.body['certificate'] as { cid: string }).cid, (d.chain.get(d.cid('reward'))?.certificate?.cid.toString()))
    const rejections = (await json('/api/rejections?limit=100')).body['rejections'] as { cid: string | null; code: string; scope: string }[]
    const last = rejections.find((x) => x.cid !== null && x.scope === 'block')
    assert.ok(last !== undefined && last.cid !== null)
    const rejected = await json(`/api/blocks/${last.cid}`)
    assert.equal(rejected.body['status'], 'rejected')
    assert.equal((rejected.body['rejection'] as { code: string }).code, last.code)
    const unknown = await json('/api/blocks/bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy')
    assert.equal(unknown.status, 404)
    assert.equal(unknown.body['status'], 'unknown')
  })

  test('param index, balances, unknown routes', async () => {
    const params = await json('/api/params')
    const bytes = Buffer.from(params.body['dag_cbor_hex'] as string, 'hex')
    assert.equal(CID.createV1(0x71, await sha256.digest(bytes)).toString(), params.body['cid'])
    assert.equal((params.body['entries'] as Record<string, string>)['layer0.expert0'], d.cid('expert0.0v1').toString())
    const miner = await json(`/api/balance/${Buffer.from(publicKeyOf(d.miner)).toString('hex')}`)
    assert.equal(miner.body['balance'], 980)
    assert.equal((await json('/api/balance/00ff')).status, 400)
    assert.equal((await json('/api/nothing')).status, 404)
  })
})

describe('/ws live feed', () => {
  test('a client gets hello, then each newly accepted header', async () => {
    const ws = new WebSocket(`${r.url.replace('http', 'ws')}/ws`)
    const messages: { type: string; block?: { cid: string; header_hex: string } }[] = []
    const waitFor = (n: number): Promise<void> => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${messages.length} messages`)), 5000)
      const check = (): void => {
        if (messages.length >= n) {
          clearTimeout(timer)
          resolve()
        }
      }
      ws.on('message', (data) => {
        messages.push(JSON.parse(String(data)) as never)
        check()
      })
      check()
    })
    await waitFor(1)
    assert.equal(messages[0]?.type, 'hello')
    const fresh = await freshDataset(d, 'feed')
    assert.equal((await post(r.url, fresh.car)).status, 201)
    await waitFor(2)
    assert.equal(messages[1]?.type, 'accepted')
    assert.equal(messages[1]?.block?.cid, fresh.built.sealed.cid.toString())
    assert.equal(messages[1]?.block?.header_hex, Buffer.from(fresh.built.sealed.bytes).toString('hex'))
    assert.equal(r.relay.feed.clients, 1)
    ws.close()
  })
})
