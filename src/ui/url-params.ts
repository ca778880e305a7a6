/**
 * URL parameters the site reads once at load:
 *
 * - `?relay=URL` (repeatable): relays to use instead of the saved ones, in order;
 * - `?genesis=CID`: the trust anchor to pin (see genesis.ts);
 * - `?temperature=`, `?top_p=`, `?max_tokens=`, `?seed=`: the chat's initial sampling
 *   (`temperature=0` is greedy; without `?seed=` each answer draws its own seed);
 * - `?backend=auto|webgpu|ort-wasm|cpu`.
 *
 * They are read from the query string and also from a query after the hash route
 * (`#/chat?temperature=0`), so both kinds of link work on any static host.
 *
 * @module
 */
import { BACKEND_CHOICES, DEFAULT_SAMPLING, type BackendChoice, type Sampling, type Settings } from '../client/api.ts'
import { readGenesis, type Genesis } from './genesis.ts'

/** Sampling limits the inputs and URL parameters accept. */
export const SAMPLING_LIMITS = Object.freeze({
  temperature: { min: 0, max: 2, step: 0.05 },
  topP: { min: 0, max: 1, step: 0.05 },
  maxTokens: { min: 1, max: 4096, step: 1 },
  seed: { min: 0, max: 2 ** 32 - 1, step: 1 }
})

export interface UrlOptions {
  readonly relays: readonly string[]
  readonly genesis: Genesis
  readonly sampling: Sampling
  readonly backend: BackendChoice | null
  /** One line per parameter that was given but not usable, shown to the user. */
  readonly problems: readonly string[]
}

/** The query of `location.search` and of the hash route, merged (hash last). */
export function urlParams(search: string, hash = ''): URLSearchParams {
  const params = new URLSearchParams(search)
  const q = hash.indexOf('?')
  if (q >= 0) for (const [k, v] of new URLSearchParams(hash.slice(q + 1))) params.append(k, v)
  return params
}

/**
 * A relay base URL as the client wants it (`http://127.0.0.1:8080`, no trailing slash), or an
 * error saying why not. Only http and https: the relay is reached with fetch and WebSocket.
 */
export function normalizeRelayUrl(raw: string): { ok: true; url: string } | { ok: false; reason: string } {
  const text = raw.trim()
  if (text === '') return { ok: false, reason: 'is empty' }
  let url: URL
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`)
  } catch {
    return { ok: false, reason: 'is not a URL' }
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return { ok: false, reason: 'must start with http:// or https://' }
  if (url.username !== '' || url.password !== '') return { ok: false, reason: 'must not carry a user name or password' }
  if (url.search !== '' || url.hash !== '') return { ok: false, reason: 'must not have a query or fragment' }
  const path = url.pathname.replace(/\/+$/, '')
  return { ok: true, url: `${url.origin}${path}` }
}

type NumberField = keyof Sampling

const SAMPLING_PARAMS: readonly (readonly [NumberField, readonly string[]])[] = [
  ['temperature', ['temperature']],
  ['topP', ['top_p', 'topP']],
  ['maxTokens', ['max_tokens', 'maxTokens']],
  ['seed', ['seed']]
]

/**
 * A sampling value from text: a finite number in range (whole for maxTokens and seed), or why not.
 * A seed left empty (or `random`) is null: a new seed for each answer. `max` lowers the upper limit
 * (the chat bounds Max tokens by the model's context window).
 */
export function parseSamplingValue<F extends NumberField>(field: F, raw: string, max: number = SAMPLING_LIMITS[field].max): { ok: true; value: Sampling[F] } | { ok: false; reason: string } {
  const text = raw.trim()
  if (field === 'seed' && (text === '' || text.toLowerCase() === 'random')) return { ok: true, value: null as Sampling[F] }
  const value = text === '' ? NaN : Number(text)
  const { min } = SAMPLING_LIMITS[field]
  if (!Number.isFinite(value)) return { ok: false, reason: 'is not a number' }
  if ((field === 'maxTokens' || field === 'seed') && !Number.isInteger(value)) return { ok: false, reason: 'must be a whole number' }
  if (value < min || value > max) return { ok: false, reason: `must be between ${min} and ${max}` }
  return { ok: true, value: value as Sampling[F] }
}

/** Read every URL option; unusable values are dropped and listed in `problems`. */
export function readUrlOptions(search: string, hash = ''): UrlOptions {
  const params = urlParams(search, hash)
  const problems: string[] = []

  const relays: string[] = []
  for (const raw of params.getAll('relay')) {
    const r = normalizeRelayUrl(raw)
    if (!r.ok) problems.push(`?relay=${raw} ${r.reason}; ignored`)
    else if (!relays.includes(r.url)) relays.push(r.url)
  }

  const sampling: { -readonly [K in keyof Sampling]: Sampling[K] } = { ...DEFAULT_SAMPLING }
  for (const [field, names] of SAMPLING_PARAMS) {
    for (const name of names) {
      const raw = params.get(name)
      if (raw === null) continue
      const v = parseSamplingValue(field, raw)
      if (v.ok) (sampling as Record<NumberField, number | null>)[field] = v.value
      else problems.push(`?${name}=${raw} ${v.reason}; using ${sampling[field] ?? 'a random seed'}`)
      break
    }
  }

  let backend: BackendChoice | null = null
  const rawBackend = params.get('backend')
  if (rawBackend !== null) {
    const found = BACKEND_CHOICES.find((b) => b === rawBackend.trim())
    if (found === undefined) problems.push(`?backend=${rawBackend} is not one of ${BACKEND_CHOICES.join(', ')}; ignored`)
    else backend = found
  }

  const genesisSearch = params.has('genesis') ? `?genesis=${encodeURIComponent(params.get('genesis') ?? '')}` : ''
  const genesis = readGenesis(genesisSearch)
  if (genesis.kind === 'invalid') problems.push(`?genesis=${genesis.raw} is ${genesis.reason}; no anchor pinned from the URL`)

  return Object.freeze({ relays: Object.freeze(relays), genesis, sampling: Object.freeze(sampling), backend, problems: Object.freeze(problems) })
}

/** The settings a page load overrides (`client.start(overrides)`): only what the URL gave. */
export function startOverrides(options: UrlOptions): Partial<Settings> {
  const o: { -readonly [K in keyof Settings]?: Settings[K] } = {}
  if (options.relays.length > 0) o.relays = options.relays
  if (options.genesis.kind === 'pinned') o.trustAnchor = options.genesis.cid
  if (options.backend !== null) o.backend = options.backend
  return o
}
