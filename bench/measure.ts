/** Small timing helpers shared by benchmarks: interleaved rounds, medians. */

/** Median of a list of numbers. */
export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2
}

/** Seconds one call of `fn` takes, as the median of `rounds` timings of `reps` calls. */
export async function timeOf(fn: () => unknown, reps: number, rounds = 5): Promise<number> {
  const times: number[] = []
  for (let r = 0; r < rounds; r++) {
    const t = performance.now()
    for (let i = 0; i < reps; i++) await fn()
    times.push((performance.now() - t) / 1000 / reps)
  }
  return median(times)
}
