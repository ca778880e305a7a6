/**
 * A layout for chain B's DAG drawn as SVG: one column per layer (the embedding and other
 * layerless blocks first), in each column the router on top and then one row per expert, the
 * versions of an expert side by side left to right, so `supersedes` edges are short arrows along a
 * row and `depends_on` edges are curves between columns.
 *
 * @module
 */
import type { BlockSummary, DagView } from '../workers/api.ts'

export const DAG_SIZES = Object.freeze({
  nodeWidth: 132,
  nodeHeight: 44,
  versionGap: 22,
  rowGap: 12,
  columnGap: 64,
  header: 34,
  margin: 16
})

export interface DagNodeBox {
  readonly block: BlockSummary
  readonly x: number
  readonly y: number
  /** First line, e.g. `expert 3` or `router`; second line e.g. `v1 · certified`. */
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
  readonly columns: readonly { readonly label: string; readonly x: number; readonly width: number }[]
  readonly nodes: readonly DagNodeBox[]
  readonly edges: readonly DagEdgePath[]
}

const ORDER = { embedding: 0, router: 1, expert: 2 } as Record<string, number>

/** The expert number in `layer3.expert12`, or null. */
function expertNumber(name: string | null): number | null {
  const m = name === null ? null : /\.expert(\d+)$/.exec(name)
  return m === null || m[1] === undefined ? null : Number(m[1])
}

function nodeTitle(b: BlockSummary): string {
  const e = expertNumber(b.expertName)
  if (e !== null) return `expert ${e}`
  if (b.blockType === 'router') return 'router'
  return b.expertName ?? b.blockType
}

/** A block's lineage: versions of one expert share it. */
function lineage(b: BlockSummary): string {
  return b.expertName ?? b.cid
}

function compareRows(a: BlockSummary, b: BlockSummary): number {
  const t = (ORDER[a.blockType] ?? 3) - (ORDER[b.blockType] ?? 3)
  if (t !== 0) return t
  const ea = expertNumber(a.expertName) ?? -1
  const eb = expertNumber(b.expertName) ?? -1
  if (ea !== eb) return ea - eb
  return lineage(a) < lineage(b) ? -1 : lineage(a) > lineage(b) ? 1 : 0
}

/** Lay out chain B: positions for every node and a path for every edge between drawn nodes. */
export function layoutDag(view: DagView): DagLayout {
  const S = DAG_SIZES
  // Columns: layerless blocks (-1) first, then layers ascending.
  const byColumn = new Map<number, Map<string, BlockSummary[]>>()
  for (const b of view.nodes) {
    const col = b.layer ?? -1
    const rows = byColumn.get(col) ?? new Map<string, BlockSummary[]>()
    const key = lineage(b)
    rows.set(key, [...(rows.get(key) ?? []), b])
    byColumn.set(col, rows)
  }
  const columns: { label: string; x: number; width: number }[] = []
  const nodes: DagNodeBox[] = []
  const at = new Map<string, DagNodeBox>()
  let x = S.margin
  let height = 0
  for (const col of [...byColumn.keys()].sort((a, b) => a - b)) {
    const rows = [...(byColumn.get(col) ?? new Map<string, BlockSummary[]>()).values()]
      .map((versions) => versions.slice().sort((a, b) => a.version - b.version || (a.cid < b.cid ? -1 : 1)))
      .sort((a, b) => compareRows(a[0] as BlockSummary, b[0] as BlockSummary))
    const most = Math.max(1, ...rows.map((r) => r.length))
    const width = most * S.nodeWidth + (most - 1) * S.versionGap
    columns.push({ label: col < 0 ? 'model' : `layer ${col}`, x, width })
    rows.forEach((versions, row) => {
      const y = S.margin + S.header + row * (S.nodeHeight + S.rowGap)
      versions.forEach((block, v) => {
        const box: DagNodeBox = {
          block,
          x: x + v * (S.nodeWidth + S.versionGap),
          y,
          title: nodeTitle(block),
          subtitle: `v${block.version} · ${block.pol}${block.current ? '' : ' · old'}`
        }
        nodes.push(box)
        at.set(block.cid, box)
      })
      height = Math.max(height, y + S.nodeHeight + S.margin)
    })
    x += width + S.columnGap
  }
  const edges: DagEdgePath[] = []
  for (const e of view.edges) {
    const a = at.get(e.from)
    const b = at.get(e.to)
    if (a === undefined || b === undefined) continue
    edges.push({ ...e, d: edgePath(a, b) })
  }
  return {
    width: Math.max(x - S.columnGap + S.margin, 2 * S.margin),
    height: Math.max(height, S.margin * 2 + S.header),
    columns,
    nodes,
    edges
  }
}

/** A curve from `a` to `b` leaving and entering on the sides that face each other. */
function edgePath(a: DagNodeBox, b: DagNodeBox): string {
  const { nodeWidth: w, nodeHeight: h } = DAG_SIZES
  const ay = a.y + h / 2
  const by = b.y + h / 2
  if (Math.abs(a.x - b.x) < w) {
    // Same column: loop out on the left side.
    const bend = 28 + Math.min(60, Math.abs(ay - by) / 4)
    return `M${a.x},${ay} C${a.x - bend},${ay} ${b.x - bend},${by} ${b.x},${by}`
  }
  const [x1, x2] = b.x < a.x ? [a.x, b.x + w] : [a.x + w, b.x]
  const dx = (x2 - x1) / 2
  return `M${x1},${ay} C${x1 + dx},${ay} ${x2 - dx},${by} ${x2},${by}`
}
