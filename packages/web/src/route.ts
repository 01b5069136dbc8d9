/** Hash routes (`#/env/demo/settings`): the server serves index.html for any path, but a hash needs no server. */
import { useEffect, useState } from 'react'

export type Route =
  | { page: 'environments' }
  | { page: 'wizard' }
  | { page: 'plugins' }
  | { page: 'pools' }
  | { page: 'environment'; env: string; tab: EnvTab }

export const ENV_TABS = ['settings', 'nodes', 'deploy', 'health'] as const
export type EnvTab = (typeof ENV_TABS)[number]

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent)
  if (parts[0] === 'new') return { page: 'wizard' }
  if (parts[0] === 'plugins') return { page: 'plugins' }
  if (parts[0] === 'pools') return { page: 'pools' }
  if (parts[0] === 'env' && parts[1]) {
    const tab = (ENV_TABS as readonly string[]).includes(parts[2]) ? (parts[2] as EnvTab) : 'settings'
    return { page: 'environment', env: parts[1], tab }
  }
  return { page: 'environments' }
}

export const href = (r: Route): string =>
  r.page === 'environment'
    ? `#/env/${encodeURIComponent(r.env)}/${r.tab}`
    : r.page === 'wizard'
      ? '#/new'
      : r.page === 'environments'
        ? '#/'
        : `#/${r.page}`

export const go = (r: Route): void => {
  location.hash = href(r)
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash))
  useEffect(() => {
    const f = () => setRoute(parseRoute(location.hash))
    window.addEventListener('hashchange', f)
    return () => window.removeEventListener('hashchange', f)
  }, [])
  return route
}
