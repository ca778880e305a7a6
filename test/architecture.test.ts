/**
 * The dependency rules of docs/design.md §3, checked on the source: the isomorphic core
 * (src/chain, src/tensor, src/model) imports no Node built-ins, no Node globals, and nothing from
 * the UI or the relay, so the light client and the full node run the same code.
 */
import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const CORE = ['src/chain', 'src/tensor', 'src/model', 'src/errors.ts', 'src/assert.ts']

function* sources(path: string): Generator<string> {
  const full = join(root, path)
  if (!existsSync(full)) return
  if (full.endsWith('.ts')) {
    yield full
    return
  }
  for (const e of readdirSync(full, { withFileTypes: true })) {
    if (e.isDirectory()) yield* sources(join(path, e.name))
    else if (e.name.endsWith('.ts')) yield join(full, e.name)
  }
}

test('the isomorphic core imports no Node built-ins, UI or relay code, and uses no Node globals', () => {
  const problems: string[] = []
  for (const file of CORE.flatMap((p) => [...sources(p)])) {
    const text = readFileSync(file, 'utf8')
    const name = relative(root, file)
    for (const m of text.matchAll(/from\s+'([^']+)'|import\(\s*'([^']+)'\s*\)/g)) {
      const spec = m[1] ?? m[2] ?? ''
      if (spec.startsWith('node:') || /^(fs|path|os|crypto|buffer|child_process|worker_threads)$/.test(spec)) problems.push(`${name}: imports ${spec}`)
      if (/(^|\/)(ui|relay|workers)\//.test(spec) || spec.endsWith('.svelte')) problems.push(`${name}: imports ${spec}`)
    }
    const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '')
    for (const global of ['Buffer', 'process', 'require', '__dirname']) {
      if (new RegExp(`\\b${global}\\b[.(]`).test(code)) problems.push(`${name}: uses the Node global ${global}`)
    }
  }
  assert.deepEqual(problems, [])
})
