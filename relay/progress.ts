/**
 * Progress of a long step (init, verify, a store check) on stderr, for the command line and `serve`.
 *
 * @module
 */

/** Progress on stderr: one rewritten line on a terminal, a line per quarter (and the last) in logs. */
export function progressLine(label: string): (done: number, total: number, what?: string) => void {
  const tty = process.stderr.isTTY === true
  let shown = -1
  return (done, total, what) => {
    const pct = Math.floor((100 * done) / total)
    const text = `${label} [${done}/${total}] ${pct}%${what === undefined ? '' : ' ' + what}`
    if (tty) {
      process.stderr.write(`\r${text}\x1b[K${done === total ? '\n' : ''}`)
    } else if (Math.floor(pct / 25) > shown || done === total) {
      shown = Math.floor(pct / 25)
      process.stderr.write(text + '\n')
    }
  }
}
