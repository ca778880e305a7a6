/**
 * The conversation: prompt/answer turns, the sampling settings, and the running chat. It lives as
 * long as the page (made by App), so a chat keeps streaming while the user looks at the explorer.
 *
 * @module
 */
import type { ClientApi, Sampling } from '../client/api.ts'
import { applyChatEvent, finishTurn, newTurn, type EditableSampling, type Turn } from './chat.ts'
import { pageContext } from './context.ts'
import { plain } from './state.svelte.ts'

export class ChatSession {
  readonly client: ClientApi
  turns: Turn[] = $state([])
  sampling: EditableSampling = $state({ temperature: 0, topP: 0, maxTokens: 0, seed: 0 })
  /** An answer is being produced (true from send until the worker settles it, even after reset). */
  running: boolean = $state(false)
  /**
   * The page's own param index (expert name -> current block and version), so an answer's expert
   * list can mark the experts that have a newer accepted version than the one it used.
   */
  current: Record<string, { readonly cid: string; readonly version: number }> = $state({})
  #next = 1
  #inflight: Promise<void> | null = null

  constructor(client: ClientApi, sampling: Sampling) {
    this.client = client
    this.sampling = { ...sampling }
  }

  /** Ask `prompt`; the new turn streams its answer. Ignored while another answer runs. */
  async send(prompt: string): Promise<void> {
    const text = prompt.trim()
    if (text === '' || this.running) return
    this.running = true
    this.turns.push(newTurn(this.#next++, text, plain(this.sampling)))
    // The proxied turn: mutations through it redraw the answer as tokens arrive.
    const turn = this.turns[this.turns.length - 1] as Turn
    const run = (async () => {
      try {
        const outcome = await this.client.chat(text, plain(this.sampling), (event) => applyChatEvent(turn, event))
        finishTurn(turn, outcome)
        await this.refreshCurrent()
      } catch (error) {
        finishTurn(turn, { error })
      }
    })()
    this.#inflight = run
    await run
    this.#inflight = null
    this.running = false
  }

  async stop(): Promise<void> {
    if (this.running) await this.client.stop()
  }

  /** Read the current param index again (after an answer, and when a chain B block is accepted). */
  async refreshCurrent(): Promise<void> {
    try {
      this.current = await this.client.currentExperts()
    } catch {
      // The worker is gone: the chat says so on the next answer.
    }
  }

  /** Start over: stop any running answer and forget the turns. */
  async reset(): Promise<void> {
    await this.stop()
    this.turns = []
    // The worker answers one chat at a time: let the stopped one settle before another is sent.
    await this.#inflight
  }
}

const context = pageContext<ChatSession>('chat session', 'getChat')
export const setChat = context.set
export const getChat = context.get
