/**
 * Where to draw chain B's DAG as SVG. Columns: layerless blocks (the embedding), then one per
 * layer; rows: the router, then one per expert number, so `layer3.expert5` sits in the same row as
 * `layer0.expert5`. Inside a cell the versions of an expert run left to right, so a `supersedes`
 * edge is a short arrow along the row; versions that compete (two improvements of one base) stack
 * downwards, the current one on top. Column widths and row heights fit their largest cell.
 *
 * (src/explorer/dag.ts has a layout of the same shape for other callers; this one keeps the page's
 * main bundle free of chain code.)
 *
 * @module
 */
import type { BlockSummary, DagView } from '../workers/api.ts'

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
    if (a !== undefined && b !== undefined) edges.push({ from: e.from, to: e.to, kind: e.kind, d: edgePath(a, b) })
  }
  return {
    width: nodes.length === 0 ? 2 * S.margin : x - S.columnGap + S.margin,
    height: nodes.length === 0 ? 2 * S.margin + S.header : y - S.rowGap + S.margin,
    columns,
    nodes,
    edges
  }
}

/**
 * A curve between two boxes, from the side of `a` facing `b` to the facing side of `b`: left and
 * right sides when the boxes do not overlap horizontally, else bottom and top.
 */
function edgePath(a: DagNodeBox, b: DagNodeBox): string {
  const { nodeWidth: w, nodeHeight: h } = DAG_SIZES
  if (b.x + w <= a.x || a.x + w <= b.x) {
    const left = b.x < a.x
    const x1 = left ? a.x : a.x + w
    const x2 = left ? b.x + w : b.x
    const y1 = a.y + h / 2
    const y2 = b.y + h / 2
    const bend = (x2 - x1) / 2
    return `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`
  }
  const up = b.y < a.y
  const x1 = a.x + w / 2
  const x2 = b.x + w / 2
  const y1 = up ? a.y : a.y + h
  const y2 = up ? b.y + h : b.y
  const bend = (y2 - y1) / 2
  return `M${x1},${y1} C${x1},${y1 + bend} ${x2},${y2 - bend} ${x2},${y2}`
}
