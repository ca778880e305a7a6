/**
 * Verify steps arrive one at a time (`onStep`), possibly first as `pending` and then settled; the
 * list shows each step once, in the order it first appeared, with its latest state.
 *
 * @module
 */
import type { VerifyStep, VerifyStepStatus } from '../client/api.ts'

/** `steps` with `step` replacing the one of the same id, or appended. */
export function mergeStep(steps: readonly VerifyStep[], step: VerifyStep): VerifyStep[] {
  const i = steps.findIndex((s) => s.id === step.id)
  if (i < 0) return [...steps, step]
  const next = steps.slice()
  next[i] = step
  return next
}

/** Counts per status, for the summary line under the steps. */
export function stepCounts(steps: readonly VerifyStep[]): Record<VerifyStepStatus, number> {
  const counts: Record<VerifyStepStatus, number> = { pending: 0, passed: 0, failed: 0, skipped: 0 }
  for (const s of steps) counts[s.status]++
  return counts
}

/** Tile steps (`tile-root`, `tile-node-N`, `tile-leaf`) form the Merkle path. */
export function isTileStep(step: VerifyStep): boolean {
  return step.id.startsWith('tile-')
}

/** Clamp a tile picker's value into 0..tiles-1 (0 for a block without tiles). */
export function clampTile(value: number, tiles: number): number {
  if (!Number.isFinite(value) || tiles <= 0) return 0
  return Math.max(0, Math.min(tiles - 1, Math.trunc(value)))
}
