import { test } from 'node:test'
import assert from 'node:assert/strict'
import { RuleError, isRuleError } from '../src/errors.ts'

test('RuleError carries code and field', () => {
  const e = new RuleError('E_POW', 'nonce')
  assert.equal(e.name, 'RuleError')
  assert.ok(isRuleError(e, 'E_POW'))
  assert.match(e.message, /^E_POW \(nonce\): /)
})
