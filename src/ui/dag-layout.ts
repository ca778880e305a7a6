/**
 * Where to draw chain B's DAG as SVG. Columns: layerless blocks (the embedding), then one per
 * layer; rows: the router, then one per expert number, so `layer3.expert5` sits in the same row as
 * `layer0.expert5`. Inside a cell the versions of an expert run left to right, so a `supersedes`
 * edge is a short arrow along the row; versions that compete (two improvements of one base) stack
 * downwards, the current one on top. Column widths and row heights fit their largest cell.
 *
 * (src/explorer/dag-view.ts has a layout of the same shape for other callers; this one keeps the page's
 * main bundle free of chain code.)
 *
 * @module
 */
import type { BlockSummary, DagView } from '../client/api.ts'

export const DAG_SIZES = Object.freeze({
  nodeWidth: 128,
  nodeHeight: 42,
  versionGap: 26,
  stackGap: 8,
  rowGap: 14,
  columnGap: 60,
  /** Room above the first row for the column labels. */
  header: 30,
  margin: 14
})

export interface DagNodeBox {
  readonly block: BlockSummary
  readonly x: number
  readonly y: number
  /** First line, e.g. `expert 3`, `router`, `embedding`; second line e.g. `v1 · certified`. */
  readonly title: string
  readonly subtitle: string
}

export interface DagEdgePath {
  readonly from: string
  readonly to: string
  readonly kind: 'depends_on' | 'supersedes'
  /** SVG path data. */
  readonly d: string
}

export interface DagLayout {
  readonly width: number
  readonly height: number
  /** Column labels with their left x and width. */
  readonly columns: readonly { readonly label: string; readonly x: number; readonly width: number }[]
  readonly nodes: readonly DagNodeBox[]
  readonly edges: readonly DagEdgePath[]
}

/** `layer3.expert12` -> { layer: 3, expert: 12 }; `layer3.router` -> expert null. */
function parseName(name: string | null): { layer: number | null; expert: number | null; router: boolean } {
  const m = name === null ? null : /^layer(\d+)\.(router|expert(\d+))$/.exec(name)
  if (m === null) return { layer: null, expert: null, router: false }
  return { layer: Number(m[1]), expert: m[3] === undefined ? null : Number(m[3]), router: m[2] === 'router' }
}

function nodeTitle(b: BlockSummary): string {
  const p = parseName(b.expertName)
  if (p.expert !== null) return `expert ${p.expert}`
  if (p.router) return 'router'
  return b.expertName ?? b.blockType
}

/** Lay out chain B: a box for every node and a path for every edge between drawn nodes. */
export function layoutDag(view: DagView): DagLayout {
  const S = DAG_SIZES
  // Cells: column key (layer, -1 for layerless) x row key (0 router / layerless, E + 1 expert E).
  const names = new Map<string, BlockSummary[]>()
  for (const b of view.nodes) {
    const key = b.expertName ?? b.cid
    names.set(key, [...(names.get(key) ?? []), b])
  }
  interface Placed { block: BlockSummary; column: number; row: number; version: number; slot: number }
  const placed: Placed[] = []
  const colVersions = new Map<number, number>()
  const rowSlots = new Map<number, number>()
  for (const [, versions] of [...names].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    versions.sort((a, b) => a.version - b.version || Number(b.current) - Number(a.current) || (a.cid < b.cid ? -1 : 1))
    const first = versions[0] as BlockSummary
    const p = parseName(first.expertName)
    const column = first.layer ?? p.layer ?? -1
    const row = p.expert === null ? 0 : p.expert + 1
    const slots = new Map<number, number>()
    for (const block of versions) {
      const slot = slots.get(block.version) ?? 0
      slots.set(block.version, slot + 1)
      placed.push({ block, column, row, version: block.version, slot })
      colVersions.set(column, Math.max(colVersions.get(column) ?? 1, block.version + 1))
      rowSlots.set(row, Math.max(rowSlots.get(row) ?? 1, slot + 1))
    }
  }

  const colX = new Map<number, number>()
  const columns: { label: string; x: number; width: number }[] = []
  let x = S.margin
  for (const c of [...colVersions.keys()].sort((a, b) => a - b)) {
    const n = colVersions.get(c) ?? 1
    const width = n * S.nodeWidth + (n - 1) * S.versionGap
    colX.set(c, x)
    columns.push({ label: c < 0 ? 'embedding' : `layer ${c}`, x, width })
    x += width + S.columnGap
  }
  const rowY = new Map<number, number>()
  let y = S.margin + S.header
  for (const r of [...rowSlots.keys()].sort((a, b) => a - b)) {
    const n = rowSlots.get(r) ?? 1
    rowY.set(r, y)
    y += n * S.nodeHeight + (n - 1) * S.stackGap + S.rowGap
  }

  const nodes: DagNodeBox[] = placed.map((p) => ({
    block: p.block,
    x: (colX.get(p.column) ?? 0) + p.version * (S.nodeWidth + S.versionGap),
    y: (rowY.get(p.row) ?? 0) + p.slot * (S.nodeHeight + S.stackGap),
    title: nodeTitle(p.block),
    subtitle: `v${p.block.version} · ${p.block.pol}${p.block.current ? '' : ' · old'}`
  }))
  const at = new Map(nodes.map((n) => [n.block.cid, n]))
  const edges: DagEdgePath[] = []
  for (const e of view.edges) {
    const a = at.get(e.from)
    const b = at.get(e.to)
    if (a !== undefined && b !== undefined) edges.push({ from: e.from, to: e.to, kind: e.kind, d: edgePath(a, b, nodes) })
  }
  return {
    width: nodes.length === 0 ? 2 * S.margin : x - S.columnGap + S.margin,
    height: nodes.length === 0 ? 2 * S.margin + S.header : y - S.rowGap + S.margin,
    columns,
    nodes,
    edges
  }
}

/** Does any box other than `a` and `b` overlap the rectangle spanned by the two points? */
function blocked(x1: number, y1: number, x2: number, y2: number, a: DagNodeBox, b: DagNodeBox, nodes: readonly DagNodeBox[]): boolean {
  const { nodeWidth: w, nodeHeight: h } = DAG_SIZES
  const [left, right] = x1 < x2 ? [x1, x2] : [x2, x1]
  const [top, bottom] = y1 < y2 ? [y1, y2] : [y2, y1]
  return nodes.some((n) => n !== a && n !== b && n.x < right && n.x + w > left && n.y < bottom && n.y + h > top)
}

/** A polyline through `points` with its corners rounded (radius up to `r`). */
function rounded(points: readonly (readonly [number, number])[], r = 6): string {
  const [first, ...rest] = points
  if (first === undefined) return ''
  let d = `M${first[0]},${first[1]}`
  for (let i = 0; i < rest.length; i++) {
    const [x, y] = rest[i] as readonly [number, number]
    const next = rest[i + 1]
    const prev = (i === 0 ? first : rest[i - 1]) as readonly [number, number]
    if (next === undefined) {
      d += ` L${x},${y}`
      break
    }
    // Stop short of the corner, then curve round it towards the next point.
    const inLen = Math.hypot(x - prev[0], y - prev[1])
    const outLen = Math.hypot(next[0] - x, next[1] - y)
    const k = Math.min(r, inLen / 2, outLen / 2)
    const bx = x - ((x - prev[0]) / (inLen || 1)) * k
    const by = y - ((y - prev[1]) / (inLen || 1)) * k
    const ax = x + ((next[0] - x) / (outLen || 1)) * k
    const ay = y + ((next[1] - y) / (outLen || 1)) * k
    d += ` L${bx},${by} Q${x},${y} ${ax},${ay}`
  }
  return d
}

/**
 * A line from box `a` to box `b`. Where nothing stands between them it is a curve from the side
 * of `a` facing `b` to the facing side of `b`. Otherwise it runs around the other boxes: out into
 * the gap beside `a`, along the free band just under `a` (rows line up across columns, so that band
 * is free everywhere), and up or down the gap beside `b`.
 */
function edgePath(a: DagNodeBox, b: DagNodeBox, nodes: readonly DagNodeBox[]): string {
  const { nodeWidth: w, nodeHeight: h, stackGap } = DAG_SIZES
  const ay = a.y + h / 2
  const by = b.y + h / 2
  const out = 10
  if (b.x + w <= a.x || a.x + w <= b.x) {
    const left = b.x < a.x
    const x1 = left ? a.x : a.x + w
    const x2 = left ? b.x + w : b.x
    if (!blocked(x1, ay, x2, by, a, b, nodes)) {
      const bend = (x2 - x1) / 2
      return `M${x1},${ay} C${x1 + bend},${ay} ${x2 - bend},${by} ${x2},${by}`
    }
    const gx1 = left ? x1 - out : x1 + out
    const gx2 = left ? x2 + out : x2 - out
    const band = a.y + h + stackGap / 2
    return rounded([[x1, ay], [gx1, ay], [gx1, band], [gx2, band], [gx2, by], [x2, by]])
  }
  // One above the other.
  const up = b.y < a.y
  const y1 = up ? a.y : a.y + h
  const y2 = up ? b.y + h : b.y
  const x = a.x + w / 2
  const x2 = b.x + w / 2
  if (!blocked(x, y1, x2, y2, a, b, nodes)) {
    const bend = (y2 - y1) / 2
    return `M${x},${y1} C${x},${y1 + bend} ${x2},${y2 - bend} ${x2},${y2}`
  }
  const gx = Math.min(a.x, b.x) - out
  return rounded([[a.x, ay], [gx, ay], [gx, by], [b.x, by]])
}
