/**
 * Submission CARs: every devnet block round-trips through encodeSubmission / decodeSubmission and
 * is accepted; every case of the bad-submission catalogue is refused with its rule, in memory (the
 * relay test sends the same catalogue over HTTP).
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { MemoryChain } from '../../src/chain/memory.ts'
import { linkedFiles, checkSubmissionBlocks, decodeSubmission } from '../../src/chain/submission.ts'
import { RULES, RuleError, type RuleCode } from '../../src/errors.ts'
import { UNREACHABLE, badSubmissions } from '../fixtures/bad-submissions.ts'
import { Devnet, NOW, submissionCar } from '../fixtures/devnet.ts'

describe('submission CARs', () => {
  test('every devnet block round-trips and is accepted by a fresh chain', async () => {
    const d = await Devnet.standard()
    const fresh = new MemoryChain()
    for (const [name, built] of d.built) {
      const original = d.chain.get(built.sealed.cid)
      assert.ok(original !== undefined, name)
      const files = built.files ?? []
      const car = await submissionCar(built)
      const sub = await decodeSubmission(car)
      assert.equal(Buffer.compare(sub.input.header, built.input.header), 0)
      assert.equal(Buffer.compare(sub.input.payload, built.input.payload), 0)
      const block = await fresh.submit(sub.input, { now: NOW })
      checkSubmissionBlocks(block, sub.blocks)
      assert.equal(linkedFiles(block).length, files.length)
    }
    assert.equal(fresh.size, d.chain.size)
  })

  test('each rule a submission can break is refused with its code, and the catalogue covers every rule', async () => {
    const d = await Devnet.standard()
    const cases = await badSubmissions(d)
    const seen = new Set<RuleCode>()
    for (const c of cases) {
      let error: unknown
      try {
        const sub = await decodeSubmission(c.car)
        const block = await d.chain.submit(sub.input, { now: NOW })
        checkSubmissionBlocks(block, sub.blocks)
      } catch (e) {
        error = e
      }
      assert.ok(error instanceof RuleError, `${c.what}: expected ${c.code}, got ${error === undefined ? 'acceptance' : String(error)}`)
      assert.equal(error.code, c.code, `${c.what}: ${error.message}`)
      seen.add(c.code)
    }
    const missing = (Object.keys(RULES) as RuleCode[]).filter((code) => !seen.has(code) && UNREACHABLE[code] === undefined)
    assert.deepEqual(missing, [], 'rules without a bad submission')
  })
})
