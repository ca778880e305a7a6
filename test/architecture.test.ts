/**
 * The dependency rules of docs/design.md §3, checked on the source:
 * - the isomorphic core (src/codec, src/chain, src/tensor, src/model) imports no Node built-ins, no
 *   Node globals, and nothing from the UI or the relay, so the light client and the full node run
 *   the same code;
 * - src/ imports only downward through its layers (LAYERS), never from relay/, and has no import
 *   circle (type-only imports included: a circle is a circle to a reader).
 */
import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, sep } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const CORE = ['src/codec', 'src/chain', 'src/tensor', 'src/model', 'src/train', 'src/errors.ts', 'src/assert.ts', 'src/time.ts']

function* sources(path: string, extensions: readonly string[] = ['.ts']): Generator<string> {
  const full = join(root, path)
  if (!existsSync(full)) return
  if (extensions.some((x) => full.endsWith(x))) {
    yield full
    return
  }
  for (const e of readdirSync(full, { withFileTypes: true })) {
    if (e.isDirectory()) yield* sources(join(path, e.name), extensions)
    else if (extensions.some((x) => e.name.endsWith(x))) yield join(full, e.name)
  }
}

/**
 * The layers of src/, lowest first. A module may import from its own layer or any below it, never
 * from one above. Modules of one layer may import each other as long as no circle forms.
 */
const LAYERS: readonly (readonly string[])[] = [
  ['errors.ts', 'assert.ts', 'time.ts'],
  ['codec'],
  ['tensor'],
  ['chain'],
  ['model', 'gpu', 'store', 'net'],
  ['engine', 'train', 'pol', 'explorer', 'wallet'],
  ['client'],
  ['workers'],
  ['ui'],
  ['main.ts']
]

/**
 * Upward imports that stay, each with why. (None today; an entry here needs a reason a reviewer
 * accepts, and the issue that removes it.)
 */
const UPWARD_ALLOWED: Readonly<Record<string, string>> = {}

/** Every relative import of a source file (static, type-only, re-exports, dynamic), resolved to a path under root. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8')
  const out: string[] = []
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"`;]*?from\s+'([^']+)'|import\(\s*'([^']+)'\s*\)|^\s*import\s+'([^']+)'/gm)) {
    const spec = m[1] ?? m[2] ?? m[3] ?? ''
    if (spec.startsWith('.')) out.push(join(dirname(file), spec))
  }
  return out
}

function layerOf(file: string): number {
  const rel = relative(join(root, 'src'), file)
  const top = rel.split(sep)[0] as string
  const i = LAYERS.findIndex((l) => l.includes(top))
  if (i < 0) throw new Error(`src/${rel}: its folder is in no layer of LAYERS`)
  return i
}

test('src/ imports only downward through its layers and never from relay/', () => {
  const problems: string[] = []
  for (const file of sources('src', ['.ts', '.svelte'])) {
    const from = relative(root, file)
    for (const target of importsOf(file)) {
      const to = relative(root, target)
      if (!to.startsWith(`src${sep}`)) {
        problems.push(`${from} imports ${to}, outside src/`)
        continue
      }
      const key = `${from} -> ${to}`
      if (layerOf(target) > layerOf(file) && UPWARD_ALLOWED[key] === undefined) problems.push(`${key}: upward (${LAYERS[layerOf(file)]?.join('/')} -> ${LAYERS[layerOf(target)]?.join('/')})`)
    }
  }
  assert.deepEqual(problems, [])
  assert.ok(Object.keys(UPWARD_ALLOWED).length <= 2)
})

test('src/ has no import circle', () => {
  const graph = new Map<string, string[]>()
  for (const file of sources('src', ['.ts', '.svelte'])) graph.set(file, importsOf(file))
  // Tarjan's strongly connected components: any component of more than one module is a circle.
  let index = 0
  const indexOf = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const circles: string[][] = []
  const visit = (v: string): void => {
    indexOf.set(v, index)
    low.set(v, index++)
    stack.push(v)
    onStack.add(v)
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue
      if (!indexOf.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number))
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v) as number, indexOf.get(w) as number))
    }
    if (low.get(v) === indexOf.get(v)) {
      const component: string[] = []
      for (;;) {
        const w = stack.pop() as string
        onStack.delete(w)
        component.push(relative(root, w))
        if (w === v) break
      }
      if (component.length > 1) circles.push(component.sort())
    }
  }
  for (const v of graph.keys()) if (!indexOf.has(v)) visit(v)
  assert.deepEqual(circles, [])
})

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
