#!/usr/bin/env node
// `blyan` command: runs relay/cli.ts through tsx (the project ships TypeScript sources).
import { register } from 'tsx/esm/api'

register()
const { main } = await import('../relay/cli.ts')
const code = await main(process.argv.slice(2))
if (code !== 0) process.exitCode = code
