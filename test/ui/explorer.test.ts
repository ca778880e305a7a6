import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { BlockSummary, DagView, VerifyStep } from '../../src/client/api.ts'
import { DAG_SIZES, layoutDag } from '../../src/ui/dag-layout.ts'
import { clampTile, mergeStep, stepCounts } from '../../src/ui/verify-steps.ts'
import { SEARCH_PLACEHOLDER, blockPosition, blockTitle, headerFieldNote, searchMissHint } from '../../src/ui/explorer.ts'

function block(cid: string, patch: Partial<BlockSummary>): BlockSummary {
  return {
    cid, label: `B:${cid}`, name: null, chain: 'B', index: 0, blockType: 'expert', expertName: null, layer: null, timestamp: 0, minerPub: '02', difficulty: 1,
    payload: 'bafk', payloadSize: 1, prev: null, dependsOn: [], supersedes: null, version: 0, pol: 'genesis', current: true, finality: null, ...patch
  }
}

test('mergeStep keeps first-seen order and the latest state of each step', () => {
  const s = (id: string, status: VerifyStep['status']): VerifyStep => ({ id, label: id, status, detail: '' })
  let steps: VerifyStep[] = []
  steps = mergeStep(steps, s('cid', 'pending'))
  steps = mergeStep(steps, s('pow', 'passed'))
  steps = mergeStep(steps, s('cid', 'passed'))
  steps = mergeStep(steps, s('tile-leaf', 'failed'))
  assert.deepEqual(steps.map((x) => `${x.id}:${x.status}`), ['cid:passed', 'pow:passed', 'tile-leaf:failed'])
  assert.deepEqual(stepCounts(steps), { pending: 0, passed: 2, failed: 1, skipped: 0 })
  assert.equal(clampTile(5, 3), 2)
  assert.equal(clampTile(-1, 3), 0)
  assert.equal(clampTile(1.7, 3), 1)
  assert.equal(clampTile(NaN, 3), 0)
  assert.equal(clampTile(2, 0), 0)
})

test('layoutDag: a column per layer (embedding first), router row on top, a row per expert number, versions along a row', () => {
  const view: DagView = {
    nodes: [
      block('e11', { layer: 1, expertName: 'layer1.expert1', version: 0, current: false }),
      block('e11v1', { layer: 1, expertName: 'layer1.expert1', version: 1, pol: 'certified', supersedes: 'e11', current: false }),
      block('e11v1b', { layer: 1, expertName: 'layer1.expert1', version: 1, pol: 'certified', supersedes: 'e11' }),
      block('e10', { layer: 1, expertName: 'layer1.expert0' }),
      block('r1', { layer: 1, expertName: 'layer1.router', blockType: 'router' }),
      block('e01', { layer: 0, expertName: 'layer0.expert1' }),
      block('r0', { layer: 0, expertName: 'layer0.router', blockType: 'router' }),
      block('emb', { layer: null, expertName: 'embedding', blockType: 'embedding' })
    ],
    edges: [
      { from: 'e11v1', to: 'e11', kind: 'supersedes' },
      { from: 'e11v1b', to: 'e11', kind: 'supersedes' },
      { from: 'e10', to: 'emb', kind: 'depends_on' },
      { from: 'r1', to: 'e10', kind: 'depends_on' },
      { from: 'e10', to: 'missing', kind: 'depends_on' }
    ]
  }
  const l = layoutDag(view)
  assert.deepEqual(l.columns.map((c) => c.label), ['embedding', 'layer 0', 'layer 1'])
  const at = new Map(l.nodes.map((n) => [n.block.cid, n]))
  const pos = (cid: string): { x: number; y: number } => at.get(cid) ?? assert.fail(`${cid} not placed`)
  const { nodeWidth, nodeHeight, versionGap } = DAG_SIZES
  assert.ok(pos('r1').y < pos('e10').y && pos('e10').y < pos('e11').y)
  assert.equal(pos('emb').y, pos('r1').y)
  // the same expert number shares a row across layers
  assert.equal(pos('e01').y, pos('e11').y)
  // versions run right; the current one of two competing versions is on top
  assert.equal(pos('e11v1b').x - pos('e11').x, nodeWidth + versionGap)
  assert.equal(pos('e11v1').x, pos('e11v1b').x)
  assert.ok(pos('e11v1b').y < pos('e11v1').y)
  assert.equal(pos('r1').x, pos('e11').x)
  assert.ok(pos('emb').x < pos('e01').x && pos('e01').x < pos('e10').x)
  assert.equal(at.get('e11')?.subtitle, 'v0 · genesis · old')
  assert.equal(at.get('e11v1')?.title, 'expert 1')
  assert.equal(at.get('r1')?.title, 'router')
  assert.equal(at.get('emb')?.title, 'embedding')
  // no two boxes overlap, and all fit
  const nodes = [...at.values()]
  for (const a of nodes) {
    assert.ok(a.x >= 0 && a.x + nodeWidth <= l.width && a.y >= 0 && a.y + nodeHeight <= l.height, `${a.block.cid} inside`)
    for (const b of nodes) {
      if (a === b) continue
      const apart = a.x + nodeWidth <= b.x || b.x + nodeWidth <= a.x || a.y + nodeHeight <= b.y || b.y + nodeHeight <= a.y
      assert.ok(apart, `${a.block.cid} and ${b.block.cid} overlap`)
    }
  }
  // edges to nodes that are not drawn are left out
  assert.equal(l.edges.length, 4)
  for (const e of l.edges) assert.match(e.d, /^M[-\d.]+,[-\d.]+ [CL]/)
  // neighbours: a direct curve; router above expert 0 in one column: bottom to top
  const vertical = l.edges.find((e) => e.from === 'r1')
  assert.equal(vertical?.d, `M${pos('r1').x + nodeWidth / 2},${pos('r1').y + nodeHeight} C${pos('r1').x + nodeWidth / 2},${pos('r1').y + nodeHeight + DAG_SIZES.rowGap / 2} ${pos('e10').x + nodeWidth / 2},${pos('e10').y - DAG_SIZES.rowGap / 2} ${pos('e10').x + nodeWidth / 2},${pos('e10').y}`)
  // layer1.expert0 -> embedding passes layer 0's column: it goes round, never through a box
  const long = l.edges.find((e) => e.from === 'e10' && e.to === 'emb')?.d ?? ''
  assert.match(long, / Q/)
  for (const [, x, y] of long.matchAll(/[MLQ ]([-\d.]+),([-\d.]+)/g)) {
    for (const n of nodes) {
      if (n.block.cid === 'e10' || n.block.cid === 'emb') continue
      const inside = Number(x) > n.x && Number(x) < n.x + nodeWidth && Number(y) > n.y && Number(y) < n.y + nodeHeight
      assert.ok(!inside, `point ${x},${y} of the long edge is inside ${n.block.cid}`)
    }
  }
  assert.deepEqual(layoutDag({ nodes: [], edges: [] }).nodes, [])
})

test('explorer labels: titles, positions, the search box\'s examples, what a miss says, notes on version, index and a null pol', () => {
  assert.equal(blockTitle({ name: 'genesis-train', blockType: 'decision' }), 'genesis-train')
  assert.equal(blockTitle({ name: null, blockType: 'reward' }), 'reward')
  assert.equal(blockPosition({ chain: 'B', index: 0 }), 'depth 0 in the DAG')
  assert.equal(blockPosition({ chain: 'C', index: 4 }), 'height 4')
  // The placeholder offers labels search reads (test/explorer/search.test.ts finds them on a devnet).
  assert.match(SEARCH_PLACEHOLDER, /A:0/)
  assert.match(SEARCH_PLACEHOLDER, /B:layer0\.expert1@v0/)
  assert.equal(searchMissHint('A:3'), null)
  assert.equal(searchMissHint('layer9'), null)
  const miss = searchMissHint(' b:3 ') as string
  assert.match(miss, /depth 3/)
  assert.match(miss, /B:layer0\.expert1@v0/)
  assert.match(miss, /B:layer0\.expert1 lists every version/)

  const page = (chain: 'A' | 'B' | 'C', pol: BlockSummary['pol'], header: Record<string, unknown>) => ({ chain, version: 1, pol, label: chain === 'B' ? 'B:layer0.expert0@v1' : `${chain}:1`, header: header as Record<string, null> })
  assert.match(headerFieldNote('version', page('B', 'certified', {})) as string, /header format version, not the expert's: this block is expert version v1/)
  assert.equal(headerFieldNote('version', page('A', 'none', {})), 'header format version')
  assert.match(headerFieldNote('index', page('B', 'genesis', {})) as string, /depth in chain B's DAG.*B:layer0\.expert0@v1 names the block/)
  assert.equal(headerFieldNote('index', page('A', 'none', {})), null)
  assert.match(headerFieldNote('pol', page('B', 'certified', { pol: null })) as string, /certificate names this block.*reward/)
  assert.match(headerFieldNote('pol', page('B', 'genesis', { pol: null })) as string, /initial version has no PoL certificate/)
  assert.match(headerFieldNote('pol', page('B', 'none', { pol: null })) as string, /not found it yet/)
  assert.match(headerFieldNote('pol', page('A', 'none', { pol: null })) as string, /only on chain C rewards/)
  assert.equal(headerFieldNote('pol', page('C', 'none', { pol: 'bafy' })), null, 'a reward names its certificate')
  assert.equal(headerFieldNote('nonce', page('B', 'certified', {})), null)
})
