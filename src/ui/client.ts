/**
 * The client worker's API, handed to every component through Svelte context: App sets it once
 * (main.ts connects to the worker), views read it with `getClient()`. Components never import the
 * worker or its implementation, only the `ClientApi` type (docs/design.md §3: ui -> workers).
 *
 * @module
 */
import { getContext, setContext } from 'svelte'
import type { ClientApi } from '../client/api.ts'

const KEY = Symbol('blyan.client')

/** Make `client` available to this component's descendants. Call during component init. */
export function setClient(client: ClientApi): ClientApi {
  return setContext(KEY, client)
}

/** The client set by an ancestor; throws when none was (a component mounted outside App). */
export function getClient(): ClientApi {
  const client = getContext<ClientApi | undefined>(KEY)
  if (client === undefined) throw new Error('getClient: no client in context; mount the component inside App (src/ui/App.svelte)')
  return client
}
