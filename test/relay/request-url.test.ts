/** A request target that starts with `//` (a link written `${origin}/` + `/?x`) is a path, not an error 500. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { requestUrl } from '../../relay/http/request-url.ts'

test('request targets are paths, even when they start with //', () => {
  assert.equal(requestUrl('//?max_tokens=24').pathname, '//')
  assert.equal(requestUrl('//?max_tokens=24').searchParams.get('max_tokens'), '24')
  assert.equal(requestUrl('//evil.example/api/status').pathname, '//evil.example/api/status')
  assert.equal(requestUrl('/api/status?x=1').pathname, '/api/status')
  assert.equal(requestUrl(undefined).pathname, '/')
})
