/**
 * Named argument checks, in the style of noble's `abytes` / `anumber`.
 *
 * These catch programming misuse (our own code passing the wrong thing) and throw the built-in
 * TypeError / RangeError with the argument's name. Untrusted *data* never reaches them as a
 * failure path: bytes from the network are judged by the decoders, which throw RuleError.
 *
 * @module
 */

/** Throws TypeError unless `value` is a Uint8Array, RangeError unless it has `length` bytes (when given). */
export function abytes(value: unknown, title: string, length?: number): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${title}: expected Uint8Array, got ${typeName(value)}`)
  if (length !== undefined && value.length !== length) throw new RangeError(`${title}: expected ${length} bytes, got ${value.length}`)
}

/** Throws TypeError unless `value` is a Float32Array. */
export function af32(value: unknown, title: string): asserts value is Float32Array {
  if (!(value instanceof Float32Array)) throw new TypeError(`${title}: expected Float32Array, got ${typeName(value)}`)
}

/** Throws TypeError unless `value` is a number, RangeError unless it is a safe integer in [min, max]. */
export function aint(value: unknown, title: string, min = 0, max = Number.MAX_SAFE_INTEGER): asserts value is number {
  if (typeof value !== 'number') throw new TypeError(`${title}: expected integer, got ${typeName(value)}`)
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(`${title}: expected integer in [${min}, ${max}], got ${value}`)
  }
}

/** Throws TypeError unless `value` is an array (of anything; callers check the items). */
export function aarray(value: unknown, title: string): asserts value is readonly unknown[] {
  if (!Array.isArray(value)) throw new TypeError(`${title}: expected array, got ${typeName(value)}`)
}

/** Throws TypeError / RangeError unless `value` is one of `allowed`. */
export function aoneOf<T extends string>(value: unknown, allowed: readonly T[], title: string): asserts value is T {
  if (typeof value !== 'string') throw new TypeError(`${title}: expected one of ${allowed.join(', ')}, got ${typeName(value)}`)
  if (!(allowed as readonly string[]).includes(value)) {
    throw new RangeError(`${title}: expected one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`)
  }
}

function typeName(value: unknown): string {
  if (value === null) return 'null'
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'object'
  return typeof value
}
