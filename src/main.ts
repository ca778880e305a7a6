/**
 * Browser entry: mounts the Svelte app on `#app` (see index.html).
 *
 * @module
 */
import { mount } from 'svelte'
import App from './ui/App.svelte'
import './ui/app.css'

const target = document.getElementById('app')
if (target === null) throw new Error('index.html has no #app element to mount Blyan on')

export default mount(App, { target })
