import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { BlockSummary, DagView, VerifyStep } from '../../src/workers/api.ts'
import { DAG_SIZES, layoutDag } from '../../src/ui/dag-layout.ts'
import { clampTile, mergeStep, stepCounts } from '../../src/ui/verify-steps.ts'

function block(cid: string, patch: Partial<BlockSummary>): BlockSummary {
  return {
    cid, chain: 'B', index: 0, blockType: 'expert', expertName: null, layer: null, timestamp: 0, minerPub: '02', difficulty: 1,
    payload: 'bafk', payloadSize: 1, prev: null, dependsOn: [], supersedes: null, version: 0, pol: 'genesis', current: true, ...patch
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

test('layoutDag: a column per layer (layerless first), router on top, versions along a row', () => {
  const view: DagView = {
    nodes: [
      block('e11', { layer: 1, expertName: 'layer1.expert1', version: 0, current: false }),
      block('e11v1', { layer: 1, expertName: 'layer1.expert1', version: 1, pol: 'certified', supersedes: 'e11' }),
      block('e10', { layer: 1, expertName: 'layer1.expert0' }),
      block('r1', { layer: 1, expertName: 'layer1.router', blockType: 'router' }),
      block('e02', { layer: 0, expertName: 'layer0.expert2' }),
      block('emb', { layer: null, expertName: 'embedding', blockType: 'embedding' })
    ],
    edges: [
      { from: 'e11v1', to: 'e11', kind: 'supersedes' },
      { from: 'e11v1', to: 'e11', kind: 'depends_on' },
      { from: 'e10', to: 'emb', kind: 'depends_on' },
      { from: 'e10', to: 'missing', kind: 'depends_on' }
    ]
  }
  const l = layoutDag(view)
  assert.deepEqual(l.columns.map((c) => c.label), ['model', 'layer 0', 'layer 1'])
  const at = new Map(l.nodes.map((n) => [n.block.cid, n]))
  const { nodeWidth, nodeHeight, versionGap } = DAG_SIZES
  // layer 1: router row, expert0 row, expert1 row with v0 then v1 to its right
  assert.ok((at.get('r1')?.y ?? 0) < (at.get('e10')?.y ?? 0))
  assert.ok((at.get('e10')?.y ?? 0) < (at.get('e11')?.y ?? 0))
  assert.equal(at.get('e11')?.y, at.get('e11v1')?.y)
  assert.equal((at.get('e11v1')?.x ?? 0) - (at.get('e11')?.x ?? 0), nodeWidth + versionGap)
  assert.equal(at.get('r1')?.x, at.get('e11')?.x)
  assert.ok((at.get('emb')?.x ?? 0) < (at.get('e02')?.x ?? 0))
  assert.ok((at.get('e02')?.x ?? 0) < (at.get('e10')?.x ?? 0))
  assert.equal(at.get('e11')?.subtitle, 'v0 · genesis · old')
  assert.equal(at.get('e11v1')?.title, 'expert 1')
  assert.equal(at.get('r1')?.title, 'router')
  // edges to nodes that are not drawn are left out; the others have paths
  assert.equal(l.edges.length, 3)
  for (const e of l.edges) assert.match(e.d, /^M[-\d.]+,[-\d.]+ C/)
  // everything fits
  for (const n of l.nodes) {
    assert.ok(n.x >= 0 && n.x + nodeWidth <= l.width, `${n.block.cid} inside width`)
    assert.ok(n.y >= 0 && n.y + nodeHeight <= l.height, `${n.block.cid} inside height`)
  }
  assert.deepEqual(layoutDag({ nodes: [], edges: [] }).nodes, [])
})
