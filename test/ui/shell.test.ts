import { test } from 'node:test'
import assert from 'node:assert/strict'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import * as dagCbor from '@ipld/dag-cbor'
import { DEFAULT_CHAIN, DEFAULT_ROUTE, ROUTES, explorerRouteFromHash, hrefFor, hrefForBlock, hrefForExplorer, routeFromHash, type ExplorerRoute } from '../../src/ui/routes.ts'
import { readGenesis } from '../../src/ui/genesis.ts'

test('routeFromHash maps hashes to views', () => {
  for (const hash of ['', '#', '#/']) assert.equal(routeFromHash(hash), DEFAULT_ROUTE)
  for (const { id } of ROUTES) {
    assert.equal(routeFromHash(hrefFor(id)), id)
    assert.equal(routeFromHash(`${hrefFor(id)}/bafyrei?x=1`), id)
  }
  assert.deepEqual(ROUTES.map((r) => r.label), ['Chat', 'Explorer', 'Donate', 'Datasets', 'Wallet', 'Settings'])
  assert.equal(routeFromHash('#/nope'), undefined)
  assert.equal(routeFromHash('#/chatty'), undefined)
})

test('readGenesis accepts only a CIDv1 dag-cbor sha2-256 block CID', async () => {
  const bytes = dagCbor.encode({ index: 0, chain_id: 'A' })
  const cid = CID.createV1(dagCbor.code, await sha256.digest(bytes))
  assert.deepEqual(readGenesis(''), { kind: 'none' })
  assert.deepEqual(readGenesis('?genesis='), { kind: 'none' })
  assert.deepEqual(readGenesis(`?genesis=${cid}`), { kind: 'pinned', cid: cid.toString() })
  assert.deepEqual(readGenesis(`?x=1&genesis=${cid}&y=2`), { kind: 'pinned', cid: cid.toString() })
  assert.equal(readGenesis('?genesis=hello').kind, 'invalid')
  assert.equal(readGenesis('?genesis=<script>').kind, 'invalid')
  const raw = CID.createV1(0x55, await sha256.digest(bytes)) // raw codec: a payload leaf, not a header
  assert.equal(readGenesis(`?genesis=${raw}`).kind, 'invalid')
  // A CIDv0 (dag-pb) is a CID, but never a header's.
  assert.equal(readGenesis('?genesis=QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG').kind, 'invalid')
})

test('explorer sub-routes round-trip through their links', () => {
  const cid = 'bafyreigdmqpykrgxyaxtlafqpqhzrb7qy2rh75nldvfd4tucqmi6kfxzxe'
  const routes: ExplorerRoute[] = [
    { kind: 'chain', chain: 'A' },
    { kind: 'chain', chain: 'D' },
    { kind: 'dag' },
    { kind: 'rejections' },
    { kind: 'network' },
    { kind: 'search', query: 'layer0.expert1' },
    { kind: 'search', query: 'A:3 / odd?&' },
    { kind: 'block', cid }
  ]
  for (const r of routes) {
    assert.equal(routeFromHash(hrefForExplorer(r)), 'explorer')
    assert.deepEqual(explorerRouteFromHash(hrefForExplorer(r)), r)
  }
  assert.equal(hrefForBlock(cid), `#/explorer/${cid}`)
  for (const h of ['#/explorer', '#/explorer/', '#/explorer/chain/', '#/explorer/chain/Z', '#/explorer/search/']) {
    assert.deepEqual(explorerRouteFromHash(h), { kind: 'chain', chain: DEFAULT_CHAIN })
  }
  assert.deepEqual(explorerRouteFromHash('#/explorer/chain/c'), { kind: 'chain', chain: 'C' })
  assert.deepEqual(explorerRouteFromHash(`#/explorer/${cid}?temperature=0`), { kind: 'block', cid })
})
