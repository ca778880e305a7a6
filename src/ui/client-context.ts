/**
 * The client worker's API, handed to every component through Svelte context: App sets it once
 * (main.ts connects to the worker), views read it with `getClient()`. Components never import the
 * worker or its implementation, only the `ClientApi` type (src/client/api.ts; layers: docs/design.md §3).
 *
 * @module
 */
import type { ClientApi } from '../client/api.ts'
import { pageContext } from './context.ts'

const context = pageContext<ClientApi>('client', 'getClient')

/** Make `client` available to this component's descendants. Call during component init. */
export const setClient = context.set

/** The client set by an ancestor; throws when none was (a component mounted outside App). */
export const getClient = context.get
