/**
 * The load of bench/load.bench.ts, in a process of its own so the measuring client's event loop is
 * not the one pumping bytes: `uploads URL SECONDS` keeps 4 clients streaming 200 MB uploads (each
 * restarted as soon as the node ends the last; the prefixes come as hex on stdin), `flood URL
 * SECONDS CAR_PATH` floods the costliest routes from 50 connections. Prints one JSON line of totals.
 */
import { request } from 'node:http'
import autocannon from 'autocannon'

const MB = 1024 * 1024
const [mode, url, secondsArg, carPath] = process.argv.slice(2) as [string, string, string, string | undefined]
const seconds = Number(secondsArg)

/** One 200 MB upload of `prefix` then junk, until the node answers or closes; resolves with the bytes handed over. */
function upload(prefix: Uint8Array): Promise<number> {
  return new Promise((resolve) => {
    const u = new URL(`${url}/api/blocks`)
    const total = 200 * MB
    let sent = 0
    let done = false
    const finish = (): void => {
      if (done) return
      done = true
      req.destroy()
      resolve(sent)
    }
    const req = request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { 'Content-Type': 'application/vnd.ipld.car', 'Content-Length': String(total) } })
    req.on('response', (res) => {
      res.resume()
      finish()
    })
    req.on('error', finish)
    const junk = new Uint8Array(64 * 1024).fill(0x5a)
    const pump = (): void => {
      while (!done && sent < total) {
        const chunk = sent === 0 ? prefix : junk
        sent += chunk.length
        if (!req.write(chunk)) return void req.once('drain', pump)
      }
      if (!done) req.end()
    }
    pump()
  })
}

if (mode === 'uploads') {
  let input = ''
  for await (const chunk of process.stdin) input += String(chunk)
  const prefixes = (JSON.parse(input) as string[]).map((h) => Uint8Array.from(Buffer.from(h, 'hex')))
  const end = Date.now() + seconds * 1000
  let uploads = 0
  let bytes = 0
  await Promise.all(prefixes.map(async (prefix) => {
    while (Date.now() < end) {
      bytes += await upload(prefix)
      uploads++
    }
  }))
  console.log(JSON.stringify({ uploads, bytes }))
} else {
  const result = await autocannon({
    url,
    connections: 50,
    duration: seconds,
    requests: [{ method: 'GET', path: '/api/headers?chain=B&limit=1000' }, { method: 'GET', path: carPath as string }]
  })
  console.log(JSON.stringify({ requests: result.requests.total, refused: result.non2xx, throughput: result.throughput.average }))
}
