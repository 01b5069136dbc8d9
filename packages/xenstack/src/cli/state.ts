/**
 * The CLI's way into the state store: open it and install the plugins shipped with xenstack the first time
 * (integration/shipped.ts), saying on stderr when one could not be installed. Commands that read or change
 * plugins and environments open the store through here, so a fresh store lists the XenServer plugin.
 */
import { ensureShippedPlugins } from '../integration/shipped.js'
import { StateStore, type OpenOptions } from '../state/store.js'

export function openCliStateStore(options: OpenOptions = {}): StateStore {
  const store = StateStore.open(options)
  try {
    for (const note of ensureShippedPlugins(store).notes) process.stderr.write(`xenstack: note: ${note}\n`)
  } catch (e) {
    // The store itself is fine: a command that does not need the shipped plugins still works.
    process.stderr.write(`xenstack: note: the shipped plugins could not be installed: ${(e as Error).message}\n`)
  }
  return store
}
