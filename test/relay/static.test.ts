import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm, symlink, utimes, writeFile } from 'node:fs/promises'
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CACHE_IMMUTABLE, createStaticHandler } from '../../relay/http/static.ts'
import { checkStaleness } from '../../relay/site-build.ts'

interface Reply {
  status: number
  headers: IncomingHttpHeaders
  body: string
}

/** Raw HTTP request: `path` goes on the wire as given (no URL normalisation, unlike fetch). */
function send(port: number, method: string, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

function assertIsolated(r: Reply): void {
  assert.equal(r.headers['cross-origin-opener-policy'], 'same-origin')
  assert.equal(r.headers['cross-origin-embedder-policy'], 'require-corp')
  assert.equal(r.headers['cross-origin-resource-policy'], 'same-origin')
}

describe('relay static handler', () => {
  let dir: string
  let root: string
  let server: Server
  let port: number
  const INDEX = '<!doctype html><title>Blyan</title><div id="app"></div>'
  const JS = 'console.log("blyan")'

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'blyan-static-'))
    root = join(dir, 'dist')
    await mkdir(join(root, 'assets'), { recursive: true })
    await writeFile(join(root, 'index.html'), INDEX)
    await writeFile(join(root, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>')
    await writeFile(join(root, 'assets', 'index-AbC123.js'), JS)
    await writeFile(join(root, 'assets', 'index-AbC123.js.map'), '{}')
    await writeFile(join(root, 'assets', 'index-DeF456.css'), 'body{}')
    await writeFile(join(root, 'assets', 'ort-wasm.wasm'), Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]))
    await writeFile(join(root, 'assets', 'blob.bin'), 'x')
    await writeFile(join(dir, 'secret.txt'), 'outside the root')
    await symlink(join(dir, 'secret.txt'), join(root, 'leak.txt'))
    server = createServer((req, res) => void createStaticHandler({ root })(req, res))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    port = (server.address() as AddressInfo).port
  })

  after(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
    await rm(dir, { recursive: true, force: true })
  })

  test('/ serves index.html, no-cache, isolated', async () => {
    const r = await send(port, 'GET', '/')
    assert.equal(r.status, 200)
    assert.equal(r.body, INDEX)
    assert.equal(r.headers['content-type'], 'text/html; charset=utf-8')
    assert.equal(r.headers['cache-control'], 'no-cache')
    assert.equal(r.headers['content-length'], String(Buffer.byteLength(INDEX)))
    assertIsolated(r)
  })

  test('hashed assets are immutable and typed by extension', async () => {
    const cases: Array<[string, string]> = [
      ['/assets/index-AbC123.js', 'text/javascript; charset=utf-8'],
      ['/assets/index-DeF456.css', 'text/css; charset=utf-8'],
      ['/assets/index-AbC123.js.map', 'application/json; charset=utf-8'],
      ['/assets/ort-wasm.wasm', 'application/wasm'],
      ['/assets/blob.bin', 'application/octet-stream']
    ]
    for (const [path, type] of cases) {
      const r = await send(port, 'GET', path)
      assert.equal(r.status, 200, path)
      assert.equal(r.headers['content-type'], type, path)
      assert.equal(r.headers['cache-control'], CACHE_IMMUTABLE, path)
      assert.equal(r.headers['cache-control'], 'public, max-age=31536000, immutable', path)
      assertIsolated(r)
    }
    assert.equal((await send(port, 'GET', '/assets/index-AbC123.js?v=1')).body, JS)
  })

  test('files outside assets/ revalidate', async () => {
    const r = await send(port, 'GET', '/favicon.svg')
    assert.equal(r.status, 200)
    assert.equal(r.headers['content-type'], 'image/svg+xml')
    assert.equal(r.headers['cache-control'], 'no-cache')
  })

  test('ETag revalidation answers 304', async () => {
    const first = await send(port, 'GET', '/')
    const etag = first.headers.etag
    assert.ok(etag)
    const again = await send(port, 'GET', '/', { 'If-None-Match': etag })
    assert.equal(again.status, 304)
    assert.equal(again.body, '')
    assertIsolated(again)
  })

  test('SPA fallback: extension-less unknown paths get index.html', async () => {
    for (const path of ['/chat', '/explorer/bafyreiabc', '/assets/', '/deep/route?x=1']) {
      const r = await send(port, 'GET', path)
      assert.equal(r.status, 200, path)
      assert.equal(r.body, INDEX, path)
      assert.equal(r.headers['cache-control'], 'no-cache', path)
    }
  })

  test('missing files with an extension are 404', async () => {
    for (const path of ['/missing.js', '/assets/index-000000.js', '/favicon.ico']) {
      const r = await send(port, 'GET', path)
      assert.equal(r.status, 404, path)
      assertIsolated(r)
    }
  })

  test('path traversal is refused with 403', async () => {
    for (const path of ['/../secret.txt', '/assets/../../secret.txt', '/%2e%2e/secret.txt', '/..%2fsecret.txt', '/..\\secret.txt', '/leak.txt']) {
      const r = await send(port, 'GET', path)
      assert.equal(r.status, 403, path)
      assert.doesNotMatch(r.body, /outside the root/, path)
      assertIsolated(r)
    }
  })

  test('malformed percent-encoding is 400', async () => {
    assert.equal((await send(port, 'GET', '/%E0%A4%A')).status, 400)
    assert.equal((await send(port, 'GET', '/a%00.js')).status, 400)
  })

  test('only GET and HEAD are allowed', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
      const r = await send(port, method, '/')
      assert.equal(r.status, 405, method)
      assert.equal(r.headers.allow, 'GET, HEAD', method)
      assertIsolated(r)
    }
  })

  test('HEAD sends the GET headers without a body', async () => {
    const get = await send(port, 'GET', '/assets/index-AbC123.js')
    const head = await send(port, 'HEAD', '/assets/index-AbC123.js')
    assert.equal(head.status, 200)
    assert.equal(head.body, '')
    for (const name of ['content-type', 'content-length', 'cache-control', 'etag', 'cross-origin-embedder-policy']) {
      assert.equal(head.headers[name], get.headers[name], name)
    }
    assert.equal(head.headers['content-length'], String(Buffer.byteLength(JS)))
  })

  test('createStaticHandler checks its root option', () => {
    assert.throws(() => createStaticHandler({ root: '' }), TypeError)
  })
})

describe('relay build staleness', () => {
  test('stale when dist is missing or older than a source, fresh otherwise', async () => {
    const root = await mkdtemp(join(tmpdir(), 'blyan-build-'))
    try {
      const t0 = new Date('2026-01-01T00:00:00Z')
      const t1 = new Date('2026-01-02T00:00:00Z')
      const t2 = new Date('2026-01-03T00:00:00Z')
      await mkdir(join(root, 'src', 'ui'), { recursive: true })
      await mkdir(join(root, 'public'))
      for (const f of ['index.html', 'vite.config.ts', 'src/main.ts', 'src/ui/App.svelte', 'public/favicon.svg']) {
        await writeFile(join(root, f), '')
        await utimes(join(root, f), t0, t0)
      }
      for (const d of ['src/ui', 'src', 'public']) await utimes(join(root, d), t0, t0)

      let v = await checkStaleness({ root })
      assert.equal(v.stale, true)
      assert.match(v.reason, /missing/)

      await mkdir(join(root, 'dist'))
      await writeFile(join(root, 'dist', 'index.html'), '')
      await utimes(join(root, 'dist', 'index.html'), t1, t1)
      v = await checkStaleness({ root })
      assert.equal(v.stale, false, v.reason)

      await utimes(join(root, 'src', 'ui', 'App.svelte'), t2, t2)
      v = await checkStaleness({ root })
      assert.equal(v.stale, true)
      assert.match(v.reason, /App\.svelte is newer than dist[/\\]index\.html/)

      await utimes(join(root, 'src', 'ui', 'App.svelte'), t0, t0)
      await utimes(join(root, 'public'), t2, t2) // a file was added or removed in public/
      v = await checkStaleness({ root })
      assert.equal(v.stale, true)
      assert.match(v.reason, /^public is newer/)

      await utimes(join(root, 'public'), t0, t0)
      await writeFile(join(root, 'unrelated.md'), '') // not a build input
      await utimes(join(root, 'unrelated.md'), t2, t2)
      assert.equal((await checkStaleness({ root })).stale, false)
    } finally {
      await rm(root, { recursive: true, force: true })
    }
  })
})
