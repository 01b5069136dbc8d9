// @xenstack/restrictions runs unchanged in a real browser (Debian's Chromium) and agrees with Node.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import { readFile } from 'node:fs/promises'
import { join, normalize } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { AddressInfo } from 'node:net'
import { hasExecutable, requirePrerequisite } from '@xenstack/testkit'
import * as restrictions from '@xenstack/restrictions'
import { builtinReleases, defaultModels } from '../../src/releases/release.js'

const CHROMIUM = '/usr/bin/chromium'
const dist = fileURLToPath(new URL('../../../../restrictions/dist/src/', import.meta.url))

test('the restrictions package runs in Chromium and gives the same answers as in Node', async (t) => {
  if (!requirePrerequisite(t, `chromium (${CHROMIUM})`, () => hasExecutable(CHROMIUM))) return
  const server: Server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(/^\/+/, '')
    if (path === '' || path === 'index.html') {
      res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>restrictions</title>')
      return
    }
    try {
      const body = await readFile(join(dist, path))
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(body)
    } catch {
      res.writeHead(404).end()
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { chromium } = await import('playwright-core')
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], headless: true })
  try {
    const page = await browser.newPage()
    const errors: string[] = []
    page.on('pageerror', (e) => errors.push(e.message))
    await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/index.html`)
    const release = builtinReleases()[0]
    const models = JSON.parse(JSON.stringify(defaultModels(release)))
    const expressions = [
      "settings:common.libvirt_type.value == 'qemu' and not settings:storage.volumes_ceph.value",
      "'experimental' in version:feature_groups",
      "cluster:net_provider == 'neutron' or settings:missing.value",
      'settings:other_plugin == null',
    ]
    const selection = [
      'hypervisor:qemu',
      'network:neutron:ml2:tun',
      'network:neutron:ml2:vlan',
      'additional_service:ironic',
    ]
    const inBrowser = await page.evaluate(
      async ({ expressions, models, components, selection }) => {
        // Loaded by the browser from the package's compiled ES modules.
        const lib = await import('/index.js' as string)
        return {
          values: expressions.map((e: string) => new lib.Expression(e, false).evaluate(models)),
          violations: lib.validateSelection(components, selection).map((v: { message: string }) => v.message),
          syntax: (() => {
            try {
              lib.parseExpression('a == = b')
              return null
            } catch (e) {
              return (e as { column: number }).column
            }
          })(),
        }
      },
      { expressions, models, components: release.components, selection },
    )
    const inNode = {
      values: expressions.map((e) => new restrictions.Expression(e, false).evaluate(models)),
      violations: restrictions.validateSelection(release.components, selection).map((v) => v.message),
      syntax: 6,
    }
    assert.deepEqual(errors, [])
    assert.deepEqual(inBrowser, inNode)
    assert.deepEqual(inNode.values, [true, false, true, true])
    assert.equal(inNode.violations.length, 6)
  } finally {
    await browser.close()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
})
