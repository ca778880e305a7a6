/**
 * Chain B as a graph and its layout: the standard devnet's superseding version, plus an initial
 * version that depends on a router and competes with an existing one (so a depends_on edge and a
 * stacked cell), validated as the light client does.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { expertName } from '../../src/chain/header.ts'
import type { AcceptedBlock } from '../../src/chain/view.ts'
import { dagView, layoutDag, type DagLayout, type LayoutNode } from '../../src/explorer/dag-view.ts'
import { Devnet } from '../fixtures/devnet.ts'
import { lightNet, type LightNet } from './_net.ts'

/** The standard devnet plus `expert1.0b`: another initial version of layer1.expert0 that depends on layer1's router. */
const net = (async (): Promise<LightNet> => {
  const d = await Devnet.standard()
  await d.submit(await d.param('expert1.0b', expertName(1, 0), { seed: 555, extraDeps: ['router1'] }))
  return lightNet(d)
})()

function overlaps(a: LayoutNode, b: LayoutNode): boolean {
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height
}

function node(layout: DagLayout, cid: string): LayoutNode {
  const n = layout.nodes.find((x) => x.cid === cid)
  assert.ok(n !== undefined, cid)
  return n
}

/** A deterministic shuffle (reverse, then interleave) so order of input cannot matter. */
function shuffled<T>(items: readonly T[]): T[] {
  const r = [...items].reverse()
  return [...r.filter((_, i) => i % 2 === 1), ...r.filter((_, i) => i % 2 === 0)]
}

describe('dagView', () => {
  test('a node per chain B block; a supersedes edge for the new version, a depends_on edge within chain B only', async () => {
    const { chain, devnet: d } = await net
    const view = dagView(chain.blocks(), chain.paramIndex())
    assert.equal(view.nodes.length, 9)
    assert.ok(view.nodes.every((n) => n.chain === 'B'))
    const cid = (name: string): string => d.cid(name).toString()
    assert.deepEqual(view.edges.map((e) => ({ ...e })).sort((a, b) => a.kind.localeCompare(b.kind)), [
      { from: cid('expert1.0b'), to: cid('router1'), kind: 'depends_on' },
      { from: cid('expert0.0v1'), to: cid('expert0.0'), kind: 'supersedes' }
    ], 'the genesis (chain A) in depends_on is no edge; supersedes is not repeated as depends_on')
    const v1 = view.nodes.find((n) => n.cid === cid('expert0.0v1'))
    assert.deepEqual([v1?.version, v1?.pol, v1?.current], [1, 'certified', true])
    assert.deepEqual(dagView(shuffled(chain.blocks()), chain.paramIndex()), view, 'input order does not matter')
    assert.deepEqual(dagView([], chain.paramIndex()), { nodes: [], edges: [] })
  })
})

describe('layoutDag', () => {
  test('columns by layer, rows by expert, a new version right of its predecessor, competing versions stacked', async () => {
    const { chain, devnet: d } = await net
    const layout = layoutDag(dagView(chain.blocks(), chain.paramIndex()))
    const at = (name: string): LayoutNode => node(layout, d.cid(name).toString())
    assert.deepEqual([at('embedding').column, at('embedding').row], [0, 0])
    assert.deepEqual([at('router0').column, at('router0').row], [1, 0])
    assert.deepEqual([at('expert0.1').column, at('expert0.1').row], [1, 2])
    assert.deepEqual([at('expert1.0').column, at('expert1.0').row], [2, 1])
    assert.deepEqual(layout.columns.map((c) => c.label), ['embedding', 'layer 0', 'layer 1'])

    const v0 = at('expert0.0')
    const v1 = at('expert0.0v1')
    assert.equal(v1.y, v0.y, 'a new version sits in its predecessor\'s row')
    assert.ok(v1.x >= v0.x + v0.width, 'and right of it')
    assert.ok(at('router1').x >= v1.x + v1.width, 'the next layer\'s column starts after the widest cell')

    const [a, b] = [at('expert1.0'), at('expert1.0b')]
    assert.equal(a.x, b.x, 'two initial versions of one expert stack in one column')
    assert.ok(Math.abs(a.y - b.y) >= a.height)
    const current = chain.paramIndex().get(expertName(1, 0)) as AcceptedBlock
    assert.ok(node(layout, current.cid.toString()).y < Math.max(a.y, b.y), 'the current one on top')
    assert.ok(at('expert1.1').y >= Math.max(a.y, b.y) + a.height, 'the next row starts below the stack')

    const edge = layout.edges.find((e) => e.kind === 'supersedes')
    assert.ok(edge !== undefined)
    assert.deepEqual([edge.x1, edge.y1, edge.x2, edge.y2], [v1.x, v1.y + v1.height / 2, v0.x + v0.width, v0.y + v0.height / 2], 'from the new version\'s left side to the old one\'s right side')
    assert.match(edge.path, /^M [\d.]+ [\d.]+ C( [\d.]+){6}$/)
    assert.equal(layout.edges.length, 2)
  })

  test('deterministic, no two nodes overlap, everything inside width x height', async () => {
    const { chain } = await net
    const index = chain.paramIndex()
    const layout = layoutDag(dagView(chain.blocks(), index))
    assert.deepEqual(layoutDag(dagView(shuffled(chain.blocks()), index)), layout)
    assert.deepEqual(layoutDag(dagView(chain.blocks(), index)), layout)
    for (const [i, a] of layout.nodes.entries()) {
      assert.ok(a.x >= 0 && a.y >= 0 && a.x + a.width <= layout.width && a.y + a.height <= layout.height, a.cid)
      for (const b of layout.nodes.slice(i + 1)) assert.ok(!overlaps(a, b), `${a.block.expertName} v${a.block.version} overlaps ${b.block.expertName} v${b.block.version}`)
    }
    for (const e of layout.edges) {
      for (const [x, y] of [[e.x1, e.y1], [e.x2, e.y2]] as const) assert.ok(x >= 0 && x <= layout.width && y >= 0 && y <= layout.height)
    }
    const wide = layoutDag(dagView(chain.blocks(), index), { nodeWidth: 300, columnGap: 10 })
    assert.ok(wide.width > layout.width)
    assert.throws(() => layoutDag(dagView([], index), { margin: -1 }), RangeError)
    assert.deepEqual(layoutDag({ nodes: [], edges: [] }), { width: 32, height: 32, nodes: [], edges: [], columns: [] })
  })
})
