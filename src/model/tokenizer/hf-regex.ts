/**
 * Oniguruma patterns, as tokenizer.json's `{ "Regex": "..." }` holds them, as JavaScript RegExps.
 *
 * Hugging Face `tokenizers` compiles these with Oniguruma (onig crate, Ruby syntax, UTF-8). Most
 * of the syntax means the same in a JavaScript `u` RegExp; what does not is rewritten so the match
 * is the same, and what cannot be rewritten exactly is refused with a ModelFormatError naming it:
 *
 * | Oniguruma | meaning there | written as |
 * |---|---|---|
 * | `\s` `\S` | Unicode White_Space (JS `\s` adds U+FEFF, lacks U+0085) | `\p{White_Space}` `\P{White_Space}` |
 * | `\d` `\D` | Unicode decimal digits | `\p{Nd}` `\P{Nd}` |
 * | `\w` `\W` | Letter, Mark, Decimal_Number, Connector_Punctuation | `[\p{L}\p{M}\p{Nd}\p{Pc}]` and its negation |
 * | `\h` `\H` | hexadecimal digit | `[0-9a-fA-F]` and its negation |
 * | `(?i:...)` | case-insensitive group (JS has no inline flags before ES2025) | each ASCII letter as the set of characters that case-fold to it: `s` -> `[sSſ]`, `k` -> `[kKK]` (Unicode simple case folding; these two letters are the only ASCII ones with a non-ASCII partner) |
 * | `.` | any character but `\n` (JS also stops at `\r`, U+2028, U+2029) | `[^\n]` |
 * | `^` `$` | line anchors (Ruby syntax is always multi-line; only `\n` ends a line) | `(?<![^\n])` `(?![^\n])` |
 * | `{`, `}`, `]` not part of a quantifier / class | literal (JS `u` mode refuses them bare) | escaped |
 * | `\p{Han}` | a script, by bare name | `\p{Script=Han}` |
 * | `{,n}` | at most n | `{0,n}` |
 *
 * Refused: `\b` `\B` (JS word boundaries are ASCII-only), `\A` `\z` `\Z` `\G` `\K` `\R` `\X`,
 * atomic groups `(?>...)`, possessive quantifiers, inline flags other than `i`, nested classes and
 * POSIX brackets `[[:alpha:]]`, class intersection `&&`, `\W` inside a class, octal escapes, and
 * case-insensitive ranges or non-ASCII letters.
 *
 * @module
 */
import { formatError } from '../errors.ts'

/** Characters that are syntax in a JS `u` RegExp and need a backslash to be literal. */
const SYNTAX = new Set(['^', '$', '\\', '.', '*', '+', '?', '(', ')', '[', ']', '{', '}', '|', '/'])
const WORD = '\\p{L}\\p{M}\\p{Nd}\\p{Pc}'
const HEX = '0-9a-fA-F'
/** ASCII letters whose Unicode simple case-fold class has a non-ASCII member (CaseFolding.txt). */
const FOLD_EXTRA: Readonly<Record<string, string>> = { k: '\u212a', s: '\u017f' }

function compiles(source: string): boolean {
  try {
    new RegExp(source, 'u')
    return true
  } catch {
    return false
  }
}

/**
 * Translate an Oniguruma pattern into a JavaScript RegExp with flags `gu` that matches the same
 * strings at the same places. `where` names the pattern's place in tokenizer.json for errors.
 */
export function onigRegex(pattern: string, where: string, file: string | null = null): RegExp {
  const cs = Array.from(pattern)
  const fail = (detail: string): never => formatError(file, null, `${where}: regex ${JSON.stringify(pattern)}: ${detail} is not supported`)
  let out = ''
  let i = 0
  /** Case-insensitivity of each open group; the last entry is the innermost. */
  const groups: boolean[] = [false]
  const ci = (): boolean => groups[groups.length - 1] as boolean
  let inClass = false
  /** Just after `[` or `[^`, where `]` is a literal. */
  let classStart = false
  let afterQuantifier = false

  const caseless = (c: string, inside: boolean): string => {
    if (!/^[A-Za-z]$/.test(c)) {
      if (c.toLowerCase() !== c.toUpperCase()) fail(`the non-ASCII letter ${JSON.stringify(c)} in a case-insensitive group`)
      return inside ? literal(c, true) : literal(c, false)
    }
    const l = c.toLowerCase()
    const set = l + l.toUpperCase() + (FOLD_EXTRA[l] ?? '')
    return inside ? set : `[${set}]`
  }

  const literal = (c: string, inside: boolean): string => (SYNTAX.has(c) || (inside && c === '-') ? `\\${c}` : c)

  const hexRun = (max: number): string => {
    let h = ''
    while (h.length < max && i < cs.length && /^[0-9a-fA-F]$/.test(cs[i] as string)) h += cs[i++]
    return h
  }

  const property = (negated: boolean): string => {
    if (cs[i] !== '{') return fail(`\\${negated ? 'P' : 'p'} without {name}`)
    const close = cs.indexOf('}', i)
    if (close === -1) return fail('an unterminated \\p{')
    let name = cs.slice(i + 1, close).join('')
    i = close + 1
    if (name.startsWith('^')) {
      negated = !negated
      name = name.slice(1)
    }
    const p = negated ? 'P' : 'p'
    if (/^[A-Za-z_=]+$/.test(name)) {
      if (compiles(`\\${p}{${name}}`)) return `\\${p}{${name}}`
      if (compiles(`\\${p}{Script=${name}}`)) return `\\${p}{Script=${name}}`
    }
    return fail(`the property \\p{${name}}`)
  }

  /** The escape at cs[i] === '\\'; advances past it. */
  const escape = (inside: boolean): string => {
    const e = cs[i + 1]
    i += 2
    switch (e) {
      case undefined:
        return fail('a trailing backslash')
      case 's':
        return '\\p{White_Space}'
      case 'S':
        return '\\P{White_Space}'
      case 'd':
        return '\\p{Nd}'
      case 'D':
        return '\\P{Nd}'
      case 'w':
        return inside ? WORD : `[${WORD}]`
      case 'W':
        return inside ? fail('\\W inside a character class') : `[^${WORD}]`
      case 'h':
        return inside ? HEX : `[${HEX}]`
      case 'H':
        return inside ? fail('\\H inside a character class') : `[^${HEX}]`
      case 'p':
        return property(false)
      case 'P':
        return property(true)
      case 'n':
      case 'r':
      case 't':
      case 'f':
      case 'v':
        return `\\${e}`
      case 'a':
        return '\\x07'
      case 'e':
        return '\\x1b'
      case 'x': {
        if (cs[i] === '{') {
          i++
          const h = hexRun(8)
          if (cs[i] !== '}' || h === '') return fail('a malformed \\x{...}')
          i++
          return `\\u{${h}}`
        }
        const h = hexRun(2)
        if (h === '') return fail('\\x without hex digits')
        return `\\x${h.padStart(2, '0')}`
      }
      case 'u': {
        const h = hexRun(4)
        if (h.length !== 4) return fail('a malformed \\u escape')
        return `\\u${h}`
      }
      case '0':
        if (/^[0-7]$/.test(cs[i] ?? '')) return fail('an octal escape')
        return '\\0'
      default:
        if (/^[1-9]$/.test(e)) {
          if (inside) return fail('an octal escape in a character class')
          let n = e
          while (/^[0-9]$/.test(cs[i] ?? '')) n += cs[i++]
          return `\\${n}`
        }
        if (/^[A-Za-z0-9]$/.test(e)) return fail(`\\${e}`)
        return literal(e, inside)
    }
  }

  while (i < cs.length) {
    const c = cs[i] as string
    if (inClass) {
      if (c === ']' && !classStart) {
        out += ']'
        inClass = false
        i++
        continue
      }
      classStart = false
      if (c === '[') fail('a nested character class or POSIX bracket')
      if (c === '&' && cs[i + 1] === '&') fail('class intersection &&')
      if (c === '\\') {
        out += escape(true)
        continue
      }
      if (ci() && c.toLowerCase() !== c.toUpperCase()) {
        if (cs[i + 1] === '-' || cs[i - 1] === '-') fail('a range in a case-insensitive character class')
        out += caseless(c, true)
      } else {
        out += c === ']' ? '\\]' : c
      }
      i++
      continue
    }
    let quantifier = false
    switch (c) {
      case '\\':
        out += escape(false)
        break
      case '[':
        out += '['
        inClass = true
        classStart = true
        i++
        if (cs[i] === '^') {
          out += '^'
          i++
        }
        break
      case '(': {
        if (cs[i + 1] !== '?') {
          out += '('
          groups.push(ci())
          i++
          break
        }
        const rest = cs.slice(i + 2).join('')
        const named = /^<([A-Za-z_][A-Za-z0-9_]*)>/.exec(rest)
        if (rest.startsWith(':') || rest.startsWith('=') || rest.startsWith('!')) {
          out += `(?${rest[0]}`
          groups.push(ci())
          i += 3
        } else if (rest.startsWith('<=') || rest.startsWith('<!')) {
          out += `(?${rest.slice(0, 2)}`
          groups.push(ci())
          i += 4
        } else if (named !== null) {
          out += `(?${named[0]}`
          groups.push(ci())
          i += 2 + named[0].length
        } else if (rest.startsWith('i:')) {
          out += '(?:'
          groups.push(true)
          i += 4
        } else if (rest.startsWith('-i:')) {
          out += '(?:'
          groups.push(false)
          i += 5
        } else if (rest.startsWith('i)')) {
          // (?i) turns case-insensitivity on to the end of the enclosing group.
          groups[groups.length - 1] = true
          i += 4
        } else {
          fail(`the group (?${rest.slice(0, 3)}`)
        }
        break
      }
      case ')':
        if (groups.length === 1) fail('an unbalanced )')
        groups.pop()
        out += ')'
        i++
        break
      case '.':
        out += '[^\\n]'
        i++
        break
      case '^':
        out += '(?<![^\\n])'
        i++
        break
      case '$':
        out += '(?![^\\n])'
        i++
        break
      case '{': {
        const q = /^\{(\d*)(?:(,)(\d*))?\}/.exec(cs.slice(i).join(''))
        if (q !== null && ((q[1] as string) !== '' || (q[3] ?? '') !== '')) {
          if (afterQuantifier) fail('a quantifier on a quantifier')
          out += `{${q[1] === '' ? '0' : q[1]}${q[2] ?? ''}${q[3] ?? ''}}`
          i += q[0].length
          quantifier = true
        } else {
          out += '\\{'
          i++
        }
        break
      }
      case '|':
        out += '|'
        i++
        break
      case '}':
      case ']':
        out += `\\${c}`
        i++
        break
      case '*':
      case '+':
      case '?':
        if (afterQuantifier && c === '?') {
          out += '?' // lazy
          i++
          break
        }
        if (afterQuantifier) fail(c === '+' ? 'a possessive quantifier' : 'a quantifier on a quantifier')
        out += c
        quantifier = true
        i++
        break
      default:
        out += ci() && c.toLowerCase() !== c.toUpperCase() ? caseless(c, false) : literal(c, false)
        i++
    }
    afterQuantifier = quantifier
  }
  if (inClass) fail('an unterminated character class')
  if (groups.length !== 1) fail('an unterminated group')
  try {
    return new RegExp(out, 'gu')
  } catch (e) {
    return formatError(file, null, `${where}: regex ${JSON.stringify(pattern)} (as JavaScript ${JSON.stringify(out)}) does not compile: ${e instanceof Error ? e.message : String(e)}`)
  }
}
