import { defineConfig } from 'vite'
import { svelte } from '@sveltejs/vite-plugin-svelte'

// COOP/COEP make the page cross-origin isolated: ONNX Runtime Web needs SharedArrayBuffer for threads.
const isolation = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp'
}

export default defineConfig({
  plugins: [svelte()],
  worker: { format: 'es' },
  build: { target: 'es2022', sourcemap: true },
  server: { headers: isolation },
  preview: { headers: isolation }
})
