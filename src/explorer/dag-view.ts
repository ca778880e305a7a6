/**
 * Chain B as a graph, and where to draw it.
 *
 * `dagView` makes a node per chain B block and an edge per link between chain B blocks: the
 * `supersedes` link of a new version (one edge of kind `supersedes`, though the header lists it in
 * `depends_on` too) and every other `depends_on` target that is a chain B block. An edge goes
 * `from` the block that names the link `to` the block it names, as the header reads.
 *
 * `layoutDag` places it on a grid, deterministically (the same view always gives the same numbers):
 *
 *              column 0      column 1 (layer 0)          column 2 (layer 1)
 *   row 0      embedding     layer0.router               layer1.router
 *   row 1                    layer0.expert0 -> v1        layer1.expert0
 *   row 2                    layer0.expert1              layer1.expert1
 *
 * Columns are the embedding, then one per layer; rows are the router, then each expert. Inside a
 * cell the versions of one name run left to right by expert version, so a superseding version sits
 * right of its predecessor; versions that compete (two improvements of one base) stack downwards,
 * the param index's current one on top. Column widths and row heights fit their largest cell, so no
 * two nodes overlap.
 *
 * ```ts
 * const layout = layoutDag(dagView(chain.blocks('B'), chain.paramIndex()))
 * // <svg viewBox={`0 0 ${layout.width} ${layout.height}`}> a <rect> per layout.nodes, a <path d={e.path}> per layout.edges
 * ```
 *
 * @module
 */
import { parseExpertName } from '../chain/header.ts'
import type { AcceptedBlock } from '../chain/view.ts'
import type { BlockSummary, DagView } from './types.ts'
import { compareBlocks, summarize } from './summaries.ts'

type DagEdge = DagView['edges'][number]

/** Chain B blocks among `blocks` as a graph (blocks of other chains are ignored). */
export function dagView(blocks: Iterable<AcceptedBlock>, paramIndex: ReadonlyMap<string, AcceptedBlock>): DagView {
  const params = [...blocks].filter((b) => b.header.chain_id === 'B').sort(compareBlocks)
  const present = new Set(params.map((b) => b.cid.toString()))
  const nodes = params.map((b) => summarize(b, paramIndex))
  const edges: DagEdge[] = []
  for (const b of params) {
    const from = b.cid.toString()
    const supersedes = b.header.supersedes?.toString() ?? null
    if (supersedes !== null && present.has(supersedes)) edges.push(Object.freeze({ from, to: supersedes, kind: 'supersedes' }))
    for (const dep of b.header.depends_on) {
      const to = dep.toString()
      if (to !== supersedes && present.has(to)) edges.push(Object.freeze({ from, to, kind: 'depends_on' }))
    }
  }
  return Object.freeze({ nodes: Object.freeze(nodes), edges: Object.freeze(edges) })
}

/** Sizes of the drawing, in SVG user units. */
export interface LayoutOptions {
  /** Node box width (default 132). */
  readonly nodeWidth?: number
  /** Node box height (default 40). */
  readonly nodeHeight?: number
  /** Between versions side by side in one cell (default 28). */
  readonly versionGap?: number
  /** Between competing versions stacked in one cell (default 10). */
  readonly stackGap?: number
  /** Between columns (default 72) and between rows (default 24). */
  readonly columnGap?: number
  readonly rowGap?: number
  /** Around the drawing (default 16). */
  readonly margin?: number
}

const DEFAULTS: Required<LayoutOptions> = Object.freeze({
  nodeWidth: 132, nodeHeight: 40, versionGap: 28, stackGap: 10, columnGap: 72, rowGap: 24, margin: 16
})

export interface LayoutNode {
  readonly cid: string
  readonly block: BlockSummary
  /** Top-left corner and size of the node's box. */
  readonly x: number
  readonly y: number
  readonly width: number
  readonly height: number
  /** Grid cell: column 0 is the embedding, column L + 1 layer L; row 0 the router, row E + 1 expert E. */
  readonly column: number
  readonly row: number
}

export interface LayoutEdge {
  readonly from: string
  readonly to: string
  readonly kind: DagEdge['kind']
  /** Where the line leaves `from` and reaches `to`, on the sides of their boxes. */
  readonly x1: number
  readonly y1: number
  readonly x2: number
  readonly y2: number
  /** SVG path data: a cubic curve from (x1, y1) to (x2, y2). */
  readonly path: string
}

export interface DagLayout {
  readonly width: number
  readonly height: number
  readonly nodes: readonly LayoutNode[]
  readonly edges: readonly LayoutEdge[]
  /** Column headings (`embedding`, `layer 0`, ...) and their centre x. */
  readonly columns: readonly { readonly label: string; readonly x: number }[]
}

/** Where an expert name goes: its grid cell. */
function cellOf(name: string | null): { column: number; row: number } {
  const parsed = name === null ? null : parseExpertName(name)
  if (parsed === null || parsed.kind === 'embedding') return { column: 0, row: 0 }
  return { column: parsed.layer + 1, row: parsed.kind === 'router' ? 0 : parsed.expert + 1 }
}

/** Positions for every node and edge of `view`. */
export function layoutDag(view: DagView, options: LayoutOptions = {}): DagLayout {
  const o = { ...DEFAULTS, ...options }
  for (const [key, value] of Object.entries(o)) {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new RangeError(`options.${key}: expected a non-negative number, got ${String(value)}`)
  }

  // Group versions by expert name; within a name, place each block at (version, slot).
  const byName = new Map<string, BlockSummary[]>()
  for (const n of view.nodes) {
    const key = n.expertName ?? ''
    const list = byName.get(key)
    if (list === undefined) byName.set(key, [n])
    else list.push(n)
  }
  const placed: { node: BlockSummary; column: number; row: number; version: number; slot: number }[] = []
  const cellSize = new Map<string, { versions: number; slots: number }>()
  for (const name of [...byName.keys()].sort()) {
    const versions = byName.get(name) as BlockSummary[]
    // Current version first among equals, then by CID: the same order on every call.
    versions.sort((a, b) => a.version - b.version || Number(b.current) - Number(a.current) || (a.cid < b.cid ? -1 : a.cid > b.cid ? 1 : 0))
    const { column, row } = cellOf(name === '' ? null : name)
    const slots = new Map<number, number>()
    let maxSlots = 0
    for (const node of versions) {
      const slot = slots.get(node.version) ?? 0
      slots.set(node.version, slot + 1)
      maxSlots = Math.max(maxSlots, slot + 1)
      placed.push({ node, column, row, version: node.version, slot })
    }
    const key = `${column}:${row}`
    const prior = cellSize.get(key) ?? { versions: 0, slots: 0 }
    const maxVersion = Math.max(...versions.map((v) => v.version))
    cellSize.set(key, { versions: Math.max(prior.versions, maxVersion + 1), slots: Math.max(prior.slots, maxSlots) })
  }

  // Column widths and row heights fit their largest cell.
  let columns = 0
  let rows = 0
  for (const p of placed) {
    columns = Math.max(columns, p.column + 1)
    rows = Math.max(rows, p.row + 1)
  }
  const colVersions = new Array<number>(columns).fill(1)
  const rowSlots = new Array<number>(rows).fill(1)
  for (const [key, size] of cellSize) {
    const [c, r] = key.split(':').map(Number) as [number, number]
    colVersions[c] = Math.max(colVersions[c] as number, size.versions)
    rowSlots[r] = Math.max(rowSlots[r] as number, size.slots)
  }
  const colX: number[] = []
  let x = o.margin
  for (const versions of colVersions) {
    colX.push(x)
    x += versions * o.nodeWidth + (versions - 1) * o.versionGap + o.columnGap
  }
  const width = columns === 0 ? 2 * o.margin : x - o.columnGap + o.margin
  const rowY: number[] = []
  let y = o.margin
  for (const slots of rowSlots) {
    rowY.push(y)
    y += slots * o.nodeHeight + (slots - 1) * o.stackGap + o.rowGap
  }
  const height = rows === 0 ? 2 * o.margin : y - o.rowGap + o.margin

  const nodes: LayoutNode[] = placed
    .map((p) => Object.freeze({
      cid: p.node.cid,
      block: p.node,
      x: (colX[p.column] as number) + p.version * (o.nodeWidth + o.versionGap),
      y: (rowY[p.row] as number) + p.slot * (o.nodeHeight + o.stackGap),
      width: o.nodeWidth,
      height: o.nodeHeight,
      column: p.column,
      row: p.row
    }))
    .sort((a, b) => a.column - b.column || a.row - b.row || a.x - b.x || a.y - b.y)
  const at = new Map(nodes.map((n) => [n.cid, n]))
  const edges: LayoutEdge[] = []
  for (const e of view.edges) {
    const from = at.get(e.from)
    const to = at.get(e.to)
    if (from === undefined || to === undefined) continue
    edges.push(Object.freeze({ from: e.from, to: e.to, kind: e.kind, ...route(from, to) }))
  }
  const labels = colX.map((cx, c) => Object.freeze({
    label: c === 0 ? 'embedding' : `layer ${c - 1}`,
    x: cx + ((colVersions[c] as number) * o.nodeWidth + ((colVersions[c] as number) - 1) * o.versionGap) / 2
  }))
  return Object.freeze({ width, height, nodes: Object.freeze(nodes), edges: Object.freeze(edges), columns: Object.freeze(labels) })
}

/**
 * A line between two boxes: from the side of `from` that faces `to` to the facing side of `to`
 * (left/right when they do not overlap horizontally, else bottom/top), as a cubic curve whose
 * control points leave each box straight out of that side.
 */
function route(from: LayoutNode, to: LayoutNode): Pick<LayoutEdge, 'x1' | 'y1' | 'x2' | 'y2' | 'path'> {
  let x1: number, y1: number, x2: number, y2: number
  let horizontal: boolean
  if (to.x + to.width <= from.x || from.x + from.width <= to.x) {
    horizontal = true
    const leftward = to.x < from.x
    x1 = leftward ? from.x : from.x + from.width
    x2 = leftward ? to.x + to.width : to.x
    y1 = from.y + from.height / 2
    y2 = to.y + to.height / 2
  } else {
    horizontal = false
    const upward = to.y < from.y
    x1 = from.x + from.width / 2
    x2 = to.x + to.width / 2
    y1 = upward ? from.y : from.y + from.height
    y2 = upward ? to.y + to.height : to.y
  }
  const bend = horizontal ? (x2 - x1) / 2 : (y2 - y1) / 2
  const path = horizontal
    ? `M ${x1} ${y1} C ${x1 + bend} ${y1} ${x2 - bend} ${y2} ${x2} ${y2}`
    : `M ${x1} ${y1} C ${x1} ${y1 + bend} ${x2} ${y2 - bend} ${x2} ${y2}`
  return { x1, y1, x2, y2, path }
}
