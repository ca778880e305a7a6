/**
 * Browser entry: connects to the client worker (and, lazily, the miner worker), then mounts the
 * Svelte app on `#app` (see index.html). If the worker cannot start, the page says so instead of
 * showing a dead UI.
 *
 * @module
 */
import { mount } from 'svelte'
import App from './ui/App.svelte'
import StartFailure from './ui/StartFailure.svelte'
import { connectClient, connectMiner } from './workers/connect.ts'
import './ui/app.css'

const target = document.getElementById('app')
if (target === null) throw new Error('index.html has no #app element to mount Blyan on')

let app: ReturnType<typeof mount>
try {
  const client = await connectClient()
  app = mount(App, { target, props: { client, miner: connectMiner() } })
} catch (e) {
  app = mount(StartFailure, { target, props: { message: e instanceof Error ? e.message : String(e) } })
}

export default app
