/**
 * The page's shared objects (client, client state, chat, donor) reach components through Svelte
 * context: App sets each once, components read it. One definition of that pair of functions.
 *
 * @module
 */
import { getContext, setContext } from 'svelte'

/**
 * A context entry for one kind of shared object: `set` makes it available to the calling
 * component's descendants (call during component init), `get` returns the one an ancestor set and
 * throws, naming `getter` and `what`, when none did (a component mounted outside App).
 */
export function pageContext<T>(what: string, getter: string): { readonly get: () => T; readonly set: (value: T) => T } {
  const key = Symbol(`blyan.${what}`)
  return {
    get(): T {
      const value = getContext<T | undefined>(key)
      if (value === undefined) throw new Error(`${getter}: no ${what} in context; mount the component inside App (src/ui/App.svelte)`)
      return value
    },
    set(value: T): T {
      return setContext(key, value)
    }
  }
}
