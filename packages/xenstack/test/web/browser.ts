/**
 * What the web UI tests share: the prerequisites (Debian's Chromium, the built UI) and a Chromium page on which
 * script errors are collected and screenshots land in test-artifacts/web/.
 */
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { hasExecutable, requirePrerequisite } from '@xenstack/testkit'
import type { Page } from 'playwright-core'
import { DEFAULT_WEB_DIR } from '../../src/server/app.js'

export const CHROMIUM = '/usr/bin/chromium'
const ARTIFACTS = join(resolve(fileURLToPath(import.meta.url), '../../../../../..'), 'test-artifacts', 'web')

/** False (and a failure under CI) when Debian's Chromium is missing. */
export const chromiumPrerequisite = (t: TestContext): boolean =>
  requirePrerequisite(t, `chromium (${CHROMIUM})`, () => hasExecutable(CHROMIUM))

/** The UI is built by `npm run build` (Vite); without it the server serves a placeholder and nothing here works. */
export function assertUiBuilt(): void {
  assert.ok(
    existsSync(join(DEFAULT_WEB_DIR, 'index.html')),
    `${DEFAULT_WEB_DIR}/index.html is missing: build the UI with "npm run build"`,
  )
}

export interface UiPage {
  page: Page
  /** Script errors the page threw. */
  pageErrors: string[]
  /** A full-page screenshot as test-artifacts/web/<shotPrefix><name>.png. */
  shot(name: string): Promise<Buffer>
}

/** A headless Chromium page (1280×900) with `timeoutMs` as its default wait; the browser is closed after the test. */
export async function openUiPage(t: TestContext, opts: { timeoutMs: number; shotPrefix?: string }): Promise<UiPage> {
  mkdirSync(ARTIFACTS, { recursive: true })
  const { chromium } = await import('playwright-core')
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], headless: true })
  t.after(() => browser.close())
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  page.setDefaultTimeout(opts.timeoutMs)
  const pageErrors: string[] = []
  page.on('pageerror', (e) => pageErrors.push(e.message))
  const shot = (name: string) =>
    page.screenshot({ path: join(ARTIFACTS, `${opts.shotPrefix ?? ''}${name}.png`), fullPage: true })
  return { page, pageErrors, shot }
}
