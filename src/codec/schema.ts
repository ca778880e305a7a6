/**
 * Named checks for decoded, untrusted protocol objects.
 *
 * Each reader takes the object, the key and the path used in errors (`tensors[2].shape`), and either
 * returns a value of the promised type or throws RuleError with the given code (E_SCHEMA unless the
 * caller names a more specific rule). Decoders call them once at the boundary; code behind the
 * boundary trusts the types.
 *
 * @module
 */
import { CID } from 'multiformats/cid'
import { reject, type RuleCode } from '../errors.ts'

export type Fields = Readonly<Record<string, unknown>>

function at(path: string, key: string): string {
  if (key === '') return path
  return path === '' ? key : `${path}.${key}`
}

/** `value` must be a plain map whose key set is exactly `keys`. */
export function exactMap(value: unknown, keys: readonly string[], path: string, code: RuleCode = 'E_SCHEMA'): Fields {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array || CID.asCID(value) !== null) {
    reject(code, path === '' ? '(root)' : path, 'expected a map')
  }
  const obj = value as Fields
  for (const key of keys) if (!Object.hasOwn(obj, key)) reject(code, at(path, key), 'missing')
  for (const key of Object.keys(obj)) if (!keys.includes(key)) reject(code, at(path, key), 'unknown key')
  return obj
}

/** A non-negative safe integer, optionally at most `max`. */
export function uint(obj: Fields, key: string, path: string, max = Number.MAX_SAFE_INTEGER, code: RuleCode = 'E_SCHEMA'): number {
  const v = obj[key]
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) reject(code, at(path, key), 'expected a non-negative safe integer')
  if (v > max) reject(code, at(path, key), `must be at most ${max}`)
  return v
}

/** A finite number (DAG-CBOR encodes integral values as integers, so both forms arrive as numbers). */
export function finite(obj: Fields, key: string, path: string, code: RuleCode = 'E_SCHEMA'): number {
  const v = obj[key]
  if (typeof v !== 'number' || !Number.isFinite(v)) reject(code, at(path, key), 'expected a finite number')
  return v
}

export function bool(obj: Fields, key: string, path: string, code: RuleCode = 'E_SCHEMA'): boolean {
  const v = obj[key]
  if (typeof v !== 'boolean') reject(code, at(path, key), 'expected a boolean')
  return v
}

/** A string of at most `maxLength` UTF-16 units matching `pattern` when given. */
export function str(obj: Fields, key: string, path: string, maxLength: number, pattern?: RegExp, code: RuleCode = 'E_SCHEMA'): string {
  const v = obj[key]
  if (typeof v !== 'string') reject(code, at(path, key), 'expected a string')
  if (v.length > maxLength) reject(code, at(path, key), `longer than ${maxLength}`)
  if (pattern !== undefined && !pattern.test(v)) reject(code, at(path, key), `does not match ${pattern}`)
  return v
}

/** One of the listed string literals. */
export function oneOf<T extends string>(obj: Fields, key: string, path: string, allowed: readonly T[], code: RuleCode = 'E_SCHEMA'): T {
  const v = obj[key]
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    reject(code, at(path, key), `expected one of ${allowed.join(', ')}`)
  }
  return v as T
}

/** A byte string, of exactly `length` bytes when given. */
export function bytes(obj: Fields, key: string, path: string, length?: number, code: RuleCode = 'E_SCHEMA'): Uint8Array {
  const v = obj[key]
  if (!(v instanceof Uint8Array)) reject(code, at(path, key), 'expected bytes')
  if (length !== undefined && v.length !== length) reject(code, at(path, key), `expected ${length} bytes, got ${v.length}`)
  return v
}

export function cid(obj: Fields, key: string, path: string, code: RuleCode = 'E_SCHEMA'): CID {
  const v = CID.asCID(obj[key])
  if (v === null) reject(code, at(path, key), 'expected a CID link')
  return v
}

export function cidOrNull(obj: Fields, key: string, path: string, code: RuleCode = 'E_SCHEMA'): CID | null {
  return obj[key] === null ? null : cid(obj, key, path, code)
}

/** A list of at most `maxLength` items. */
export function list(obj: Fields, key: string, path: string, maxLength: number, code: RuleCode = 'E_SCHEMA'): readonly unknown[] {
  const v = obj[key]
  if (!Array.isArray(v)) reject(code, at(path, key), 'expected a list')
  if (v.length > maxLength) reject(code, at(path, key), `more than ${maxLength} items`)
  return v
}

/** Wrap a list item so the readers above can check it: `uint(item(v), '', 'shape[3]')`. */
export function item(value: unknown): Fields {
  return { '': value }
}
