/**
 * Past chats, kept in this browser (IndexedDB through the KV seam) so a reload or a closed tab
 * loses no conversation. One record per conversation, written whole: its turns are small (the
 * context window bounds what the model reads; the page keeps what the user saw).
 *
 * ```ts
 * const store = new ConversationStore(idbKV('blyan-chat', 'conversations'))
 * await store.save({ id, title, created, updated, turns })
 * await store.list()   // newest first, without turns
 * ```
 *
 * @module
 */
import type { KV } from './kv.ts'

/** Conversations kept; saving one more forgets the least recently updated. */
export const MAX_CONVERSATIONS = 50

export interface ConversationSummary {
  readonly id: string
  /** The first prompt, shortened. */
  readonly title: string
  /** Milliseconds since the epoch. */
  readonly created: number
  readonly updated: number
  readonly turns: number
}

export interface Conversation<T> {
  readonly id: string
  readonly title: string
  readonly created: number
  readonly updated: number
  readonly turns: readonly T[]
}

const PREFIX = 'conversation:'

function isConversation(v: unknown): v is Conversation<unknown> {
  if (typeof v !== 'object' || v === null) return false
  const c = v as Record<string, unknown>
  return typeof c['id'] === 'string' && typeof c['title'] === 'string' && typeof c['created'] === 'number' && typeof c['updated'] === 'number' && Array.isArray(c['turns'])
}

/** A title from a first prompt: one line, at most `max` characters. */
export function conversationTitle(prompt: string, max = 60): string {
  const line = prompt.replace(/\s+/g, ' ').trim()
  return line.length <= max ? line : `${line.slice(0, max - 1).trimEnd()}…`
}

export class ConversationStore<T> {
  readonly #kv: KV

  constructor(kv: KV) {
    this.#kv = kv
  }

  /** Every conversation kept, most recently updated first (a record that does not parse is skipped). */
  async list(): Promise<ConversationSummary[]> {
    const keys = (await this.#kv.keys()).filter((k) => k.startsWith(PREFIX))
    const values = await this.#kv.getMany(keys)
    return values
      .filter(isConversation)
      .map((c) => ({ id: c.id, title: c.title, created: c.created, updated: c.updated, turns: c.turns.length }))
      .sort((a, b) => b.updated - a.updated)
  }

  async get(id: string): Promise<Conversation<T> | null> {
    const v = await this.#kv.get(PREFIX + id)
    return isConversation(v) ? (v as Conversation<T>) : null
  }

  /**
   * Write a conversation whole; past MAX_CONVERSATIONS the least recently updated others are
   * forgotten. Saved while an answer streams, so only the keys are read unless there are too many.
   */
  async save(conversation: Conversation<T>): Promise<void> {
    await this.#kv.setMany([[PREFIX + conversation.id, conversation]])
    if ((await this.#kv.keys()).filter((k) => k.startsWith(PREFIX)).length <= MAX_CONVERSATIONS) return
    const extra = (await this.list()).filter((c) => c.id !== conversation.id).slice(MAX_CONVERSATIONS - 1)
    if (extra.length > 0) await this.#kv.delMany(extra.map((c) => PREFIX + c.id))
  }

  async remove(id: string): Promise<void> {
    await this.#kv.delMany([PREFIX + id])
  }
}
