/**
 * The load of bench/load.bench.ts, in a process of its own so the measuring client's event loop is
 * not the one pumping bytes: `uploads URL SECONDS` keeps 4 clients streaming 200 MB uploads (each
 * restarted as soon as the node ends the last; the prefixes come as hex on stdin), `flood URL
 * SECONDS CAR_PATH` floods the costliest routes from 50 connections. Prints one JSON line of totals.
 */
import autocannon from 'autocannon'
import { streamUpload } from '../test/fixtures/uploads.ts'

const [mode, url, secondsArg, carPath] = process.argv.slice(2) as [string, string, string, string | undefined]
const seconds = Number(secondsArg)

if (mode === 'uploads') {
  let input = ''
  for await (const chunk of process.stdin) input += String(chunk)
  const prefixes = (JSON.parse(input) as string[]).map((h) => Uint8Array.from(Buffer.from(h, 'hex')))
  const end = Date.now() + seconds * 1000
  let uploads = 0
  let bytes = 0
  await Promise.all(prefixes.map(async (prefix) => {
    while (Date.now() < end) {
      bytes += (await streamUpload(url, prefix)).sent
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
