/** Software WebGPU adapters are named as such (issue 17, problem 11): SwiftShader, llvmpipe, lavapipe, WARP, the spec's fallback flag. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { adapterName, softwareRenderer } from '../../src/gpu/adapter-kind.ts'

test('software renderers are told from real GPUs', () => {
  assert.equal(softwareRenderer({ vendor: 'google', architecture: 'swiftshader' }), 'SwiftShader')
  assert.equal(softwareRenderer({ vendor: 'mesa', architecture: '', description: 'llvmpipe (LLVM 15.0.6, 256 bits)' }), 'llvmpipe')
  assert.equal(softwareRenderer({ vendor: 'mesa', device: 'lavapipe' }), 'lavapipe')
  assert.equal(softwareRenderer({ vendor: 'microsoft', description: 'Microsoft Basic Render Driver' }), 'WARP')
  assert.equal(softwareRenderer({ vendor: 'acme', isFallbackAdapter: true }), 'a fallback (software) adapter')
  assert.equal(softwareRenderer({ vendor: 'nvidia', architecture: 'hopper', description: 'NVIDIA H100' }), null)
  assert.equal(softwareRenderer({ vendor: 'apple', architecture: 'metal-3' }), null)
  assert.equal(adapterName({ vendor: '', architecture: '' }), 'WebGPU adapter')
  assert.equal(adapterName({ vendor: 'google', architecture: 'swiftshader' }), 'google swiftshader')
})
