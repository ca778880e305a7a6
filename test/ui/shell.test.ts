import { test } from 'node:test'
import assert from 'node:assert/strict'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import * as dagCbor from '@ipld/dag-cbor'
import { DEFAULT_ROUTE, ROUTES, hrefFor, routeFromHash } from '../../src/ui/routes.ts'
import { readGenesis } from '../../src/ui/genesis.ts'

test('routeFromHash maps hashes to views', () => {
  for (const hash of ['', '#', '#/']) assert.equal(routeFromHash(hash), DEFAULT_ROUTE)
  for (const { id } of ROUTES) {
    assert.equal(routeFromHash(hrefFor(id)), id)
    assert.equal(routeFromHash(`${hrefFor(id)}/bafyrei?x=1`), id)
  }
  assert.deepEqual(ROUTES.map((r) => r.label), ['Chat', 'Explorer', 'Donate', 'Settings'])
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
