/**
 * The include pass of the pipeline builder (src/gpu/pipelines.ts): `#include name` lines replaced
 * by shaders/common/name.wgsl, nested, before the `#if` pass; its errors; and the snippets as the
 * kernels use them (no GPU needed).
 */
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { WGSL, WGSL_COMMON, type KernelName } from '../../src/gpu/wgsl.ts'
import { COMMON_DIR, SHADER_DIR } from '../../shaders/embed.ts'
import { expandIncludes, kernelSource, preprocess } from '../../src/gpu/pipelines.ts'

/** The expanded text of `source` as kernel `k` with `snippets`. */
function expand(source: string, snippets: Record<string, string>, k = 'k'): string {
  return expandIncludes(k, source, snippets).lines.join('\n')
}

/** The SyntaxError message `f` throws. */
function syntaxError(f: () => unknown): string {
  try {
    f()
  } catch (e) {
    assert.ok(e instanceof SyntaxError, `expected a SyntaxError, got ${String(e)}`)
    return e.message
  }
  assert.fail('expected a SyntaxError')
}

describe('shader includes', () => {
  test('an include line is replaced by the snippet (its final newline dropped), comments allowed', () => {
    const snippets = { a: 'A1\nA2\n' }
    assert.equal(expand('x\n#include a\ny\n', snippets), 'x\nA1\nA2\ny\n')
    assert.equal(expand('  #include a   // brings A1, A2\ny', snippets), 'A1\nA2\ny')
    assert.equal(expand('no includes\n', snippets), 'no includes\n')
    // where each line came from, for error messages
    assert.deepEqual(expandIncludes('k', 'x\n#include a\ny', snippets).where, ['k.wgsl:1', 'k.wgsl:2 > common/a.wgsl:1', 'k.wgsl:2 > common/a.wgsl:2', 'k.wgsl:3'])
  })

  test('includes nest, and included text goes through the #if pass', () => {
    const snippets = { outer: 'O1\n#include inner\nO2\n', inner: '#if X\nI_X\n#else\nI\n#endif\n' }
    const text = expand('k1\n#include outer\nk2', snippets)
    assert.equal(text, 'k1\nO1\n#if X\nI_X\n#else\nI\n#endif\nO2\nk2')
    assert.equal(preprocess(text, new Set()), 'k1\nO1\nI\nO2\nk2')
    assert.equal(preprocess(text, new Set(['X'])), 'k1\nO1\nI_X\nO2\nk2')
    // an include inside an #if branch is only kept when the branch is
    const guarded = expand('#if Y\n#include inner\n#endif\nk', snippets)
    assert.equal(preprocess(guarded, new Set()), 'k')
    assert.equal(preprocess(guarded, new Set(['Y'])), 'I\nk')
  })

  test('an unknown snippet is an error naming the kernel file and line (and the include chain)', () => {
    assert.match(syntaxError(() => expand('a\n#include nope', { b: 'B' }, 'matvec')), /^matvec\.wgsl:2: unknown snippet "nope" \(shaders\/common has b\)/)
    assert.match(syntaxError(() => expand('#include b', { b: 'B\n#include nope\n' }, 'rope')), /^rope\.wgsl:1 > common\/b\.wgsl:2: unknown snippet "nope"/)
    // kernels are not snippets
    assert.match(syntaxError(() => expandIncludes('k', '#include rope')), /unknown snippet "rope"/)
  })

  test('a cycle is an error', () => {
    assert.match(syntaxError(() => expand('#include a', { a: '#include b', b: '#include a' }, 'k')), /^k\.wgsl:1 > common\/a\.wgsl:1 > common\/b\.wgsl:1: include cycle a > b > a$/)
    assert.match(syntaxError(() => expand('#include a', { a: 'x\n#include a' }, 'k')), /include cycle a > a/)
  })

  test('a snippet included twice in one kernel is an error, also through another snippet', () => {
    assert.match(syntaxError(() => expand('#include a\n#include a', { a: 'A' }, 'k')), /^k\.wgsl:2: "a" is already included \(at k\.wgsl:1\)/)
    const diamond = { b: '#include a\nB', c: '#include a\nC', a: 'A' }
    assert.match(syntaxError(() => expand('#include b\n#include c', diamond, 'k')), /^k\.wgsl:2 > common\/c\.wgsl:1: "a" is already included \(at k\.wgsl:1 > common\/b\.wgsl:1\)/)
    // even in both branches of an #if: the include pass runs before the #if pass
    assert.match(syntaxError(() => expand('#if X\n#include a\n#else\n#include a\n#endif', { a: 'A' })), /already included/)
  })

  test('malformed include lines are errors', () => {
    for (const line of ['#include', '#include  ', '#include A', '#include a b', '#include "a"', '#include <a>', '#include a.wgsl', '#includea']) {
      // '#includea' is not an include (no word boundary): the #if pass rejects it as an unknown directive
      if (line === '#includea') {
        assert.match(syntaxError(() => preprocess(expand(line, { a: 'A' }), new Set())), /unknown directive/)
        continue
      }
      assert.match(syntaxError(() => expand(`x\n${line}`, { a: 'A' }, 'k')), /^k\.wgsl:2: malformed include/, line)
    }
  })

  test("each file's #if closes in that file", () => {
    assert.match(syntaxError(() => expand('#include a\n#endif', { a: '#if X\nA' }, 'k')), /^k\.wgsl:1 > common\/a\.wgsl: #if without #endif in this file/)
    assert.match(syntaxError(() => expand('#if X\n#include a', { a: 'A\n#endif' }, 'k')), /^k\.wgsl:2 > common\/a\.wgsl:2: #endif without #if in this file/)
    assert.match(syntaxError(() => expand('#if X\n#include a\n#endif', { a: '#else' }, 'k')), /^k\.wgsl:2 > common\/a\.wgsl:1: #else without #if in this file/)
  })

  test('#if pass errors name the file and line the text came from', () => {
    const { lines, where } = expandIncludes('k', 'x\n#include a', { a: 'A\n#define Y' })
    assert.match(syntaxError(() => preprocess(lines.join('\n'), new Set(), where)), /^k\.wgsl:2 > common\/a\.wgsl:2: unknown directive "#define Y"/)
  })

  test('WGSL holds the kernels and WGSL_COMMON the snippets: shaders/*.wgsl and shaders/common/*.wgsl', () => {
    const names = (dir: string): string[] => readdirSync(dir).filter((f) => f.endsWith('.wgsl')).map((f) => f.slice(0, -5)).sort()
    assert.deepEqual(Object.keys(WGSL).sort(), names(SHADER_DIR))
    assert.deepEqual(Object.keys(WGSL_COMMON).sort(), names(join(SHADER_DIR, COMMON_DIR)))
    for (const name of Object.keys(WGSL_COMMON)) assert.ok(!/@compute/.test(WGSL_COMMON[name as keyof typeof WGSL_COMMON]), `common/${name}.wgsl has an entry point`)
  })

  test('every kernel expands; every snippet is used; no kernel source is left with a directive', () => {
    const used = new Set<string>()
    for (const k of Object.keys(WGSL) as KernelName[]) {
      for (const m of expandIncludes(k, WGSL[k]).where.join('\n').matchAll(/common\/(\w+)\.wgsl/g)) used.add(m[1] as string)
      const src = kernelSource({ kernel: k, defines: ['INT8', 'PACKED'] })
      assert.ok(!/^\s*#/m.test(src), k)
      assert.equal(src.match(/@compute/g)?.length, 1, `${k}: one entry point`)
    }
    assert.deepEqual([...used].sort(), Object.keys(WGSL_COMMON).sort())
  })
})
