/**
 * A server's lifetime: it stops on Ctrl+C or SIGTERM, and when the process that started it is gone.
 *
 * `npm start` is `npm -> node` (the script `exec`s node); `npx blyan start` is
 * `npm exec -> sh -c -> node`. npm answers SIGTERM by passing it to its child and exiting; when
 * that child is a shell, the shell dies and node, its grandchild, used to live on as an orphan
 * still holding the port. So besides the signals, the process watches its parent (and, when the
 * parent is such a `sh -c` wrapper, the parent's parent): once one of them is gone, it stops too.
 * SIGHUP keeps its default action (the process ends; the stores are crash-safe), so that a server
 * started under `nohup` survives its terminal as nohup intends.
 *
 * ```ts
 * stopWithParent(async () => { await served.close() })
 * ```
 *
 * @module
 */
import { readFileSync } from 'node:fs'
import { basename } from 'node:path'

/** How often the parent is looked at. */
export const PARENT_POLL_MS = 500
/** Longest a clean stop may take before the process exits anyway. */
export const STOP_GRACE_MS = 3000

/** Why the process stops: a signal, or the parent that went away. */
export type StopReason = 'SIGINT' | 'SIGTERM' | 'parent exited'

export interface LifetimeOptions {
  /** One line when stopping. @default console.log, silenced once the parent (the reader of stdout) is gone */
  readonly log?: (line: string) => void
  /** How often the parent is looked at. @default PARENT_POLL_MS */
  readonly pollMs?: number
}

/** The parent of `pid` from /proc (Linux), or undefined where there is no /proc. */
function parentOf(pid: number): number | undefined {
  try {
    // /proc/PID/stat: "PID (comm) STATE PPID ...": comm may hold spaces and parentheses, so split after the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const ppid = Number(fields[1])
    return Number.isInteger(ppid) ? ppid : undefined
  } catch {
    return undefined
  }
}

/** Is `pid` running (a zombie, exited but not yet reaped, counts as gone)? */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return true // no /proc: kill(pid, 0) succeeding is all we know
  }
}

/** Is `pid` a shell running one command (`sh -c CMD`, as npm and npx run scripts and bins)? */
function isCommandShell(pid: number): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
    return ['sh', 'dash', 'bash', 'zsh'].includes(basename(argv[0] ?? '')) && argv[1] === '-c'
  } catch {
    return false
  }
}

/**
 * The processes whose end ends this one: the parent, and its parent too when the parent is a
 * `sh -c` wrapper (npm's script shell: killing npm with SIGKILL leaves that shell waiting on us).
 * Process 1 and a parent of 0 (none) are never watched.
 */
export function watchedAncestors(pid = process.pid): number[] {
  const parent = pid === process.pid ? process.ppid : parentOf(pid)
  if (parent === undefined || parent <= 1) return []
  const grandparent = isCommandShell(parent) ? parentOf(parent) : undefined
  return grandparent === undefined || grandparent <= 1 ? [parent] : [parent, grandparent]
}

/**
 * Run `stop` once on SIGINT, SIGTERM, or when the parent (see {@link watchedAncestors}) is gone,
 * then exit (0 when `stop` resolved, 1 when it threw; after {@link STOP_GRACE_MS} in any case).
 * Further signals while stopping are ignored. Returns a function that removes the handlers and
 * the watch (for a server closed by other means).
 */
export function stopWithParent(stop: (reason: StopReason) => Promise<void>, options: LifetimeOptions = {}): () => void {
  const { pollMs = PARENT_POLL_MS } = options
  let log = options.log ?? ((line: string) => console.log(line))
  const parent = process.ppid
  const watched = watchedAncestors()
  let stopping = false

  const begin = (reason: StopReason): void => {
    if (stopping) return
    stopping = true
    dispose()
    if (reason === 'parent exited') {
      // Whoever read our output is gone: writing to a closed pipe must not turn the stop into a crash.
      for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined)
      if (options.log === undefined) log = () => undefined
    }
    log(`${reason}: stopping`)
    setTimeout(() => process.exit(0), STOP_GRACE_MS).unref()
    stop(reason).then(() => process.exit(0), () => process.exit(1))
  }
  const onSignal = (signal: NodeJS.Signals): void => begin(signal as StopReason)
  const timer = setInterval(() => {
    if (process.ppid !== parent || watched.some((pid) => !running(pid))) begin('parent exited')
  }, pollMs)
  timer.unref()
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  function dispose(): void {
    clearInterval(timer)
    // Keep ignoring the signals while a stop is under way (npm passes on the Ctrl+C the shell sent us too).
    if (!stopping) {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
    }
  }
  return dispose
}
