/**
 * Issue 17, problem 11: on a software GPU (Chromium's SwiftShader here) the automatic backend is
 * chosen by measurement, not by the presence of an adapter: the chat times WebGPU and ONNX Runtime
 * WASM on a synthetic copy of the model, runs the faster and says why; Donate names the GPU as a
 * software one and times both trainers on a synthetic copy of the model, the faster its default.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { CHROMIUM_MISSING, hasChromium } from '../fixtures/browser.ts'
import { GenesisSite, live } from '../fixtures/genesis-site.ts'

describe('the automatic backend on a software GPU', { skip: hasChromium() ? false : CHROMIUM_MISSING }, () => {
  let site: GenesisSite

  before(async () => {
    site = await GenesisSite.start()
  })

  after(async () => {
    await site?.close()
  })

  test('chat: both backends timed, the faster one runs, and the page says the GPU is software', async () => {
    const page = await site.page()
    await page.goto(`${site.url}/?max_tokens=8#/chat`)
    await live(page)
    await page.getByTestId('chat-input').fill('Once upon a time')
    await page.getByTestId('chat-send').click()
    const badge = page.getByTestId('chat-backend').locator('[data-backend]')
    await badge.waitFor({ timeout: 180_000 })
    const chosen = await badge.getAttribute('data-backend')
    const webgpu = Number(await badge.getAttribute('data-measured-webgpu'))
    const ort = Number(await badge.getAttribute('data-measured-ort-wasm'))
    console.log(`# automatic backend on SwiftShader: ${chosen} (WebGPU ${webgpu.toFixed(1)} ms, ORT WASM ${ort.toFixed(1)} ms a token on a synthetic copy of the model)`)
    assert.ok(webgpu > 0 && ort > 0, `both timed (${webgpu}, ${ort} ms a token)`)
    assert.equal(chosen, webgpu <= ort ? 'webgpu' : 'ort-wasm', `the faster runs (WebGPU ${webgpu} ms, ORT ${ort} ms a token)`)
    const said = await page.getByTestId('chat-backend').innerText()
    if (chosen === 'ort-wasm') assert.match(said, /software GPU \(SwiftShader runs on the CPU\) measured/)
    else assert.match(await badge.getAttribute('title') ?? '', /software GPU: SwiftShader runs on the CPU/)
  })

  test('Donate: the software GPU is named; both trainers are timed on the model and the faster is the default', async () => {
    const page = await site.page()
    await page.goto(`${site.url}/#/donate`)
    await live(page)
    await page.getByTestId('donate-gpu').waitFor()
    assert.match(await page.getByTestId('donate-gpu').innerText(), /a software GPU \(SwiftShader runs on the CPU\)/)
    assert.match(await page.locator('label', { has: page.getByTestId('donate-backend-webgpu') }).innerText(), /a software GPU/)
    const trainers = page.locator('[data-testid="donate-trainers"][data-measured-cpu]')
    await trainers.waitFor({ timeout: 120_000 })
    const cpu = Number(await trainers.getAttribute('data-measured-cpu'))
    const webgpu = Number(await trainers.getAttribute('data-measured-webgpu'))
    console.log(`# trainers on SwiftShader: CPU ${cpu.toFixed(0)} ms, WebGPU ${webgpu.toFixed(0)} ms a step on a synthetic copy of the model`)
    assert.ok(cpu > 0 && webgpu > 0)
    assert.equal(await page.getByTestId(`donate-backend-${webgpu < cpu ? 'webgpu' : 'cpu'}`).isChecked(), true, 'the faster trainer is the default')
    assert.match(await page.locator('label', { has: page.getByTestId('donate-backend-cpu') }).innerText(), /measured \d+ ms a training step/)
  })
})
