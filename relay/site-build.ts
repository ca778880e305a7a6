/**
 * Build the site when its output is missing or older than its sources.
 *
 * ```ts
 * const why = await ensureBuilt({ root: process.cwd() })   // builds only when stale
 * ```
 *
 * @module
 */
import { readdir, stat } from 'node:fs/promises'
import { join, relative } from 'node:path'

/** Why the site needs (or does not need) a build. */
export interface Staleness {
  readonly stale: boolean
  /** One line for the log, e.g. `dist/index.html is missing` or `src/ui/App.svelte is newer than dist/index.html`. */
  readonly reason: string
}

/** The vite build of the site failed; `cause` holds vite's error. */
export class SiteBuildError extends Error {
  override readonly name = 'SiteBuildError'
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
  }
}

/** What the site is built from (relative to the project root): the same inputs vite reads. */
export const BUILD_INPUTS: readonly string[] = Object.freeze(['src', 'index.html', 'vite.config.ts', 'public'])

export interface StalenessOptions {
  /** Project root. */
  readonly root: string
  /** Build output folder, relative to root. @default 'dist' */
  readonly outDir?: string
  /** Source files and folders, relative to root; missing ones are skipped. @default BUILD_INPUTS */
  readonly inputs?: readonly string[]
}

export interface BuildOptions {
  /** Project root: where index.html and vite.config.ts are. */
  readonly root: string
  /** Progress lines. @default console.log */
  readonly log?: (line: string) => void
}

/**
 * Is `<outDir>/index.html` missing, or older than any file or folder under the inputs?
 * Folders count too, so deleting or renaming a source file also makes the build stale.
 */
export async function checkStaleness(options: StalenessOptions): Promise<Staleness> {
  const { root, outDir = 'dist', inputs = BUILD_INPUTS } = options
  const marker = join(root, outDir, 'index.html')
  const markerName = relative(root, marker)
  let built: number
  try {
    built = (await stat(marker)).mtimeMs
  } catch {
    return Object.freeze({ stale: true, reason: `${markerName} is missing` })
  }
  let newest: { path: string; mtimeMs: number } | undefined
  for (const input of inputs) {
    for await (const entry of walk(join(root, input))) {
      if (newest === undefined || entry.mtimeMs > newest.mtimeMs) newest = entry
    }
  }
  if (newest !== undefined && newest.mtimeMs > built) {
    return Object.freeze({ stale: true, reason: `${relative(root, newest.path)} is newer than ${markerName}` })
  }
  return Object.freeze({ stale: false, reason: `${markerName} is up to date` })
}

/** Every file and folder at or under `path` with its mtime; nothing when `path` does not exist. */
async function* walk(path: string): AsyncGenerator<{ path: string; mtimeMs: number }> {
  let st
  try {
    st = await stat(path)
  } catch {
    return
  }
  yield { path, mtimeMs: st.mtimeMs }
  if (!st.isDirectory()) return
  for (const name of await readdir(path)) yield* walk(join(path, name))
}

/**
 * Run the vite production build of the site, quietly: vite's warnings and errors are shown, its
 * per-file listing and the bundler's timing report are not (`npm run build` shows them); one line
 * says when it is done.
 */
export async function buildSite(options: BuildOptions): Promise<void> {
  const { root, log = console.log } = options
  // Loaded only when a build is needed: a fresh dist/ starts the server without loading vite.
  const { build } = await import('vite')
  const started = performance.now()
  try {
    await build({
      root, configFile: join(root, 'vite.config.ts'), logLevel: 'warn',
      build: { rolldownOptions: { checks: { bundlerTimings: false } } }
    })
  } catch (e) {
    throw new SiteBuildError(`vite build failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e })
  }
  log(`site built in ${((performance.now() - started) / 1000).toFixed(1)} s`)
}

/** Build the site if {@link checkStaleness} says so; resolves with the verdict that was acted on. */
export async function ensureBuilt(options: BuildOptions): Promise<Staleness> {
  const log = options.log ?? console.log
  const verdict = await checkStaleness({ root: options.root })
  if (verdict.stale) {
    log(`building the site (${verdict.reason})...`)
    await buildSite(options)
  }
  return verdict
}
