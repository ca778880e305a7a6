/**
 * The conversation: prompt/answer turns, the sampling settings, and the running chat. It lives as
 * long as the page (made by App), so a chat keeps streaming while the user looks at the explorer,
 * and it is kept in IndexedDB (src/store/conversations.ts) as it streams, so a reload loses at most
 * the last half second of an answer and the list of past chats survives.
 *
 * @module
 */
import type { ClientApi, ModelCard, Sampling } from '../client/api.ts'
import { ConversationStore, conversationTitle, type ConversationSummary } from '../store/conversations.ts'
import { idbKV } from '../store/kv.ts'
import { applyChatEvent, finishTurn, historyOf, newTurn, type EditableSampling, type Turn } from './chat.ts'
import { pageContext } from './context.ts'
import { plain } from './state.svelte.ts'

/** How often a streaming answer is written to IndexedDB. */
const SAVE_EVERY_MS = 500
/** Where the open conversation's id is kept across reloads. */
const CURRENT_KEY = 'blyan.chat.current'

function newId(): string {
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`
}

export class ChatSession {
  readonly client: ClientApi
  turns: Turn[] = $state([])
  sampling: EditableSampling = $state({ temperature: 0, topP: 0, maxTokens: 0, seed: null })
  /** An answer is being produced (true from send until the worker settles it, even after reset). */
  running: boolean = $state(false)
  /**
   * The page's own param index (expert name -> current block and version), so an answer's expert
   * list can mark the experts that have a newer accepted version than the one it used.
   */
  current: Record<string, { readonly cid: string; readonly version: number }> = $state({})
  /** What the chain's model is, once chain A is verified. */
  card: ModelCard | null = $state(null)
  /** Past chats kept in this browser, most recent first (the open one included once it has a turn). */
  conversations: ConversationSummary[] = $state([])
  /** The open conversation. */
  id: string = $state(newId())
  #created = Date.now()
  #next = 1
  #inflight: Promise<void> | null = null
  readonly #store: ConversationStore<Turn>
  #saveTimer: ReturnType<typeof setTimeout> | null = null
  /** The open conversation is in `conversations` (the list is read again only when that changes, not on every save). */
  #listed = false

  constructor(client: ClientApi, sampling: Sampling, store: ConversationStore<Turn> = new ConversationStore(idbKV('blyan-chat', 'conversations'))) {
    this.client = client
    this.sampling = { ...sampling }
    this.#store = store
  }

  /** Reopen the conversation the page had before a reload, and list the past ones. */
  async restore(): Promise<void> {
    let id: string | null = null
    try {
      id = localStorage.getItem(CURRENT_KEY)
    } catch {
      // No storage (private mode): start empty.
    }
    if (id !== null && this.turns.length === 0) await this.open(id)
    await this.#list()
  }

  /** Open a kept conversation (stopping any running answer). */
  async open(id: string): Promise<void> {
    const c = await this.#store.get(id).catch(() => null)
    if (c === null) return
    await this.reset()
    const interrupted = c.turns.some((t) => t.status === 'running')
    this.turns = c.turns.map((t) => (t.status === 'running' ? { ...t, status: 'interrupted', progress: null } : t))
    this.id = c.id
    this.#listed = true
    this.#created = c.created
    this.#next = Math.max(0, ...c.turns.map((t) => t.id)) + 1
    this.#remember()
    if (interrupted) await this.#save()
  }

  /** Forget a kept conversation; the open one starts over. */
  async remove(id: string): Promise<void> {
    if (id === this.id) await this.reset()
    await this.#store.remove(id).catch(() => undefined)
    await this.#list()
  }

  /** Ask `prompt` after the conversation so far; the new turn streams its answer. Ignored while another answer runs. */
  async send(prompt: string): Promise<void> {
    const text = prompt.trim()
    if (text === '' || this.running) return
    this.running = true
    const history = historyOf(plain(this.turns))
    this.turns.push(newTurn(this.#next++, text, plain(this.sampling)))
    // The proxied turn: mutations through it redraw the answer as tokens arrive.
    const turn = this.turns[this.turns.length - 1] as Turn
    this.#remember()
    void this.#save()
    const run = (async () => {
      try {
        const outcome = await this.client.chat({ prompt: text, history, sampling: plain(this.sampling) }, (event) => {
          applyChatEvent(turn, event)
          // The first token is kept at once (a reload right after it keeps the start), later ones every SAVE_EVERY_MS.
          if (event.type === 'token') {
            if (turn.tokens === 1) void this.#save()
            else this.#saveSoon()
          }
        })
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
    await this.#save()
  }

  async stop(): Promise<void> {
    if (this.running) await this.client.stop()
  }

  /** Read the current param index again (after an answer, and when a chain B block is accepted), and the model card. */
  async refreshCurrent(): Promise<void> {
    try {
      this.current = await this.client.currentExperts()
      this.card = (await this.client.modelCard()) ?? this.card
    } catch {
      // The worker is gone: the chat says so on the next answer.
    }
  }

  /** Start a new conversation: stop any running answer; the one left stays in the list of past chats. */
  async reset(): Promise<void> {
    await this.stop()
    // The worker answers one chat at a time: let the stopped one settle (and be saved) before another is sent.
    await this.#inflight
    this.turns = []
    this.id = newId()
    this.#created = Date.now()
    this.#next = 1
    this.#remember()
    // The chat left behind joins the list of past ones.
    this.#listed = false
    await this.#list()
  }

  #remember(): void {
    try {
      localStorage.setItem(CURRENT_KEY, this.id)
    } catch {
      // No storage: the chat still works, it is only not reopened after a reload.
    }
  }

  #saveSoon(): void {
    if (this.#saveTimer !== null) return
    this.#saveTimer = setTimeout(() => {
      this.#saveTimer = null
      void this.#save()
    }, SAVE_EVERY_MS)
  }

  async #save(): Promise<void> {
    const turns = plain(this.turns)
    const first = turns[0]
    if (first === undefined) return
    try {
      await this.#store.save({ id: this.id, title: conversationTitle(first.prompt), created: this.#created, updated: Date.now(), turns })
      if (!this.#listed) {
        this.#listed = true
        await this.#list()
      }
    } catch {
      // Storage full or unavailable: the conversation lives on in the page.
    }
  }

  async #list(): Promise<void> {
    this.conversations = await this.#store.list().catch(() => this.conversations)
  }
}

const context = pageContext<ChatSession>('chat session', 'getChat')
export const setChat = context.set
export const getChat = context.get
