// The web UI's whole path on lab-backed nodes, in real Chromium (Debian's, driven by playwright-core): a real lab
// (namespace hosts: a dom0 + compute VM of a simulated XenServer pool, a controller running a real Glance, a storage
// node) and the real server with the XenServer natives. Through the pages: the lab's pool added and discovered, an
// environment made with the wizard (QEMU-KVM next to XenServer refused with its message), settings (a bad username
// refused on its field, consent to VM restarts saved), the lab's machines added as nodes from the pool's node
// candidates (with the access records `lab up` registers: SSH, addresses, VM ref, dom0, Glance), roles assigned on
// them (a conflicting role refused), the virtual IPs (a bad one refused on its field), the compute VM's HIMN status before and after, its
// networks dragged onto its NICs with the mouse (an incomplete assignment refused by the server), a dry run, a deploy
// to `ready` with live progress, and every health check set run to its end without a failure. One lab, one deploy; a screenshot of each page in test-artifacts/web/.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { requirePrerequisite, scratchDirs } from '@xenstack/testkit'
import type { Locator, Page } from 'playwright-core'
import { Lab, autoLabName } from '../../src/lab/index.js'
import '../../src/integration/lab-services.js'
import { describeLab } from '../../src/lab/supervisor.js'
import { glanceInstalled } from '../../src/glance/server-config.js'
import { xenserverNatives } from '../../src/integration/index.js'
import { startServer } from '../../src/server/index.js'
import { labPrerequisite } from '../node/helpers.js'
import { assertUiBuilt, chromiumPrerequisite, openUiPage } from './browser.js'

const tmp = scratchDirs()
const ENV = 'labui'

test('web UI on lab-backed nodes: wizard, settings, roles, HIMN, interfaces, dry run, deploy, health', async (t) => {
  if (!chromiumPrerequisite(t)) return
  if (!(await labPrerequisite(t))) return
  if (!requirePrerequisite(t, 'python3-glance (Glance on the lab controller)', () => glanceInstalled())) return
  if (!requirePrerequisite(t, 'qemu-img (the TestVM image)', () => existsSync('/usr/bin/qemu-img'))) return
  assertUiBuilt()

  const tUp = performance.now()
  const lab = await Lab.up({
    name: autoLabName(),
    hosts: 1,
    networks: { management: { cidr: '192.168.16.0/22' }, storage: { cidr: '192.168.24.0/25' } },
    simulator: true,
    services: [{ kind: 'glance' }],
  })
  t.after(() => lab.down())
  t.diagnostic(`lab up with Glance: ${Math.round(performance.now() - tUp)} ms`)
  const password = lab.simulator!.password
  const sim = lab.simulator!.sim
  const desc = describeLab(lab, 0)

  const server = await startServer({
    dataDir: tmp('xenstack-web-lab-'),
    databaseUrl: '',
    port: 0,
    natives: xenserverNatives(),
  })
  t.after(() => server.close())
  const token = server.newToken!
  const state = server.context.state

  const { page, pageErrors, shot } = await openUiPage(t, { timeoutMs: 60_000, shotPrefix: 'lab-' })
  const nodesTable = () => page.getByRole('table', { name: 'Nodes and roles' })
  let failures = 0
  /** A subtest whose failure leaves a screenshot of the page as it was. */
  const step = (name: string, fn: () => Promise<void>) =>
    t.test(name, async () => {
      try {
        await fn()
      } catch (e) {
        await shot(`failure-${++failures}`).catch(() => undefined)
        throw e
      }
    })

  await step("login; the lab's pool added on the Pools page and discovered through XAPI", async () => {
    await page.goto(server.url)
    await page.getByLabel('API token').fill(token)
    await page.getByRole('button', { name: 'Log in' }).click()
    await page.getByRole('heading', { name: 'Environments' }).waitFor()
    await page.getByRole('link', { name: 'Pools' }).click()
    const form = page.getByRole('form', { name: 'Add a pool' })
    await form.getByLabel('Pool name').fill(lab.name)
    await form.getByLabel("Master's XAPI URL").fill(lab.simulator!.url)
    await form.getByLabel('Username').fill('root')
    await form.getByLabel('Password').fill(password)
    await form.getByRole('button', { name: 'Add pool' }).click()
    const pool = page.getByRole('region', { name: `Pool ${lab.name}` })
    await pool.getByText('compute-1').first().waitFor()
    assert.match(await pool.innerText(), /ready/)
    await shot('01-pool')
  })

  await step('wizard: XenServer next to QEMU-KVM is refused with its message; the environment is created', async () => {
    await page.getByRole('link', { name: 'New environment' }).click()
    await page.getByLabel('Name', { exact: true }).fill(ENV)
    await page.getByLabel('Release').selectOption('mitaka-9.0')
    await page.getByRole('button', { name: 'Next' }).click()
    const xen = page.getByRole('checkbox', { name: 'XenServer' })
    const qemu = page.getByRole('checkbox', { name: 'QEMU-KVM' })
    assert.equal(await xen.isDisabled(), true)
    assert.match(await describedBy(page, xen), /XenServer and QEMU-KVM cannot be used together/)
    await shot('02-wizard-refused')
    await qemu.uncheck()
    await xen.check()
    for (let i = 0; i < 4; i++) await page.getByRole('button', { name: 'Next' }).click()
    await page.getByLabel('Password').fill(password)
    await shot('03-wizard-create')
    await page.getByRole('button', { name: 'Create environment' }).click()
    await page.getByRole('heading', { name: `Environment ${ENV}` }).waitFor()
    assert.ok(state.environments.require(ENV).components.includes('hypervisor:xenserver'))
  })

  await step('settings: a bad username is refused on its field; consent to VM restarts is saved', async () => {
    await page.getByRole('tab', { name: 'Compute' }).click()
    const username = page.getByLabel('Username')
    await username.fill('bad user')
    await page.getByRole('button', { name: 'Save settings' }).click()
    await page.getByRole('alert').getByText('Settings not saved').waitFor()
    assert.equal(await username.getAttribute('aria-invalid'), 'true')
    assert.match(await describedBy(page, username), /cannot be empty or contain spaces/)
    await shot('04-settings-refused')
    await username.fill('root')
    await page.getByLabel('Allow restarting compute VMs to attach the HIMN').check()
    await page.getByRole('button', { name: 'Save settings' }).click()
    await page.getByRole('status').getByText('Settings saved.').waitFor()
    const xs = state.environments.settings(ENV).xenserver
    assert.equal(xs.username.value, 'root')
    assert.equal(xs.allow_vm_restart.value, true)
    await shot('05-settings-saved')
  })

  await step(
    "the lab's machines added from the pool's node candidates; roles; a conflicting role refused; no HIMN yet",
    async () => {
      await page.getByRole('link', { name: 'Nodes' }).click()
      // the lab's machines, offered by the server with their access records (GET /pools/:pool/node-candidates)
      const add = page.getByRole('form', { name: 'Add a node' })
      await add.getByLabel("A machine of a pool whose access the server knows (a lab's hosts)").check()
      await add.getByLabel('Pool', { exact: true }).selectOption(lab.name)
      const expected = labNodeRecords(desc, lab.name)
      for (const node of expected) {
        await add.getByLabel('Machine', { exact: true }).selectOption(node.name)
        assert.equal(await add.getByLabel('Node name', { exact: true }).inputValue(), node.name)
        await add.getByRole('button', { name: 'Add node' }).click()
        await shownOrAlert(page, nodesTable().getByRole('row').filter({ hasText: node.name }).first(), 60_000)
      }
      // what the page added is what `lab up` would have registered for these machines
      const recorded = Object.fromEntries(state.environments.nodes(ENV).map((n) => [n.name, n.data]))
      assert.deepEqual(
        JSON.parse(JSON.stringify(recorded)),
        JSON.parse(JSON.stringify(Object.fromEntries(expected.map((n) => [n.name, n.data])))),
      )
      for (const [node, role] of [
        ['compute-1', 'Compute'],
        ['controller-1', 'Controller'],
        ['storage', 'Storage - Cinder'],
      ]) {
        await page.getByRole('checkbox', { name: `${role} on ${node}` }).check()
        await page
          .getByRole('status')
          .getByText(new RegExp(`^Roles of ${node}: `))
          .waitFor()
      }
      const controller = page.getByRole('checkbox', { name: 'Controller on compute-1' })
      assert.equal(await controller.isDisabled(), true)
      assert.match(await describedBy(page, controller), /Controller/)
      const roles = Object.fromEntries(state.environments.nodes(ENV).map((n) => [n.name, n.roles]))
      assert.deepEqual(roles, { 'compute-1': ['compute'], 'controller-1': ['controller'], storage: ['cinder'] })
      await page
        .getByTestId('himn-compute-1')
        .getByText(/no HIMN VIF: Ready\. No reboot required\./)
        .waitFor()
      await page.getByTestId('himn-controller-1').getByText('no HIMN (not a VM of a pool)').waitFor()
      await shot('06-nodes-roles')
    },
  )

  await step("virtual IPs: a bad address refused on its field; the controller's address saved", async () => {
    // the lab has no public network: its controller's management address is the public VIP too, as `lab up` sets it
    const vip = desc.hosts.find((h) => h.role === 'controller')!.addresses.management.split('/')[0]
    const form = page.getByRole('form', { name: 'Virtual IPs' })
    const publicVip = form.getByLabel('Public VIP')
    await publicVip.fill('192.168.16.300')
    await form.getByLabel('Management VIP').fill(vip)
    await form.getByRole('button', { name: 'Save virtual IPs' }).click()
    await form.locator('#vip-publicVip-error').waitFor()
    assert.equal(await publicVip.getAttribute('aria-invalid'), 'true')
    assert.match(await describedBy(page, publicVip), /must match pattern|publicVip/)
    assert.equal(state.environments.cluster(ENV).public_vip, undefined)
    await publicVip.fill(vip)
    await form.getByRole('button', { name: 'Save virtual IPs' }).click()
    await form.getByRole('status').getByText('Virtual IPs saved.').waitFor()
    assert.equal(state.environments.cluster(ENV).public_vip, vip)
    assert.equal(state.environments.cluster(ENV).management_vip, vip)
  })

  await step("interfaces: the compute VM's networks dragged onto its NICs; an incomplete set is refused", async () => {
    await page.getByRole('button', { name: 'Interfaces of compute-1' }).click()
    const panel = page.getByRole('region', { name: 'Interfaces of compute-1' })
    const nic = (name: string) => panel.getByRole('list', { name: `NIC ${name}` })
    const chip = (network: string) => panel.getByRole('listitem', { name: `${network} network` })
    await nic('eth1').waitFor()
    assert.match(await nic('eth0').innerText(), /Pool-wide network associated with eth0/)
    await dragOnto(page, chip('public'), nic('eth0'))
    await dragOnto(page, chip('management'), nic('eth0'))
    // storage on eth0 is refused: compute-1's storage address is on eth1 (the routes and NAT follow the address)
    await dragOnto(page, chip('storage'), nic('eth0'))
    await dragOnto(page, chip('private'), nic('eth1'))
    await panel.getByRole('button', { name: 'Save interfaces' }).click()
    await panel
      .getByRole('alert')
      .getByText(/storage: the node's storage address \S+ is on eth1, not eth0/)
      .waitFor()
    await dragOnto(page, chip('private'), panel.getByRole('list', { name: 'Networks not on a NIC' }))
    await dragOnto(page, chip('storage'), nic('eth1'))
    await panel.getByRole('button', { name: 'Save interfaces' }).click()
    await panel
      .getByRole('alert')
      .getByText(/private: on no NIC/)
      .waitFor()
    assert.equal(nodeData('compute-1').interfaces, undefined, 'the refused assignment stored nothing')
    await shot('07-interfaces-refused')
    // the tenant network on the storage NIC: the neutron agent's bridge mapping must follow it to dom0's xenbr1
    await dragOnto(page, chip('private'), nic('eth1'))
    await panel.getByRole('button', { name: 'Save interfaces' }).click()
    await panel.getByRole('status').getByText('Interfaces of compute-1 saved.').waitFor()
    assert.deepEqual(nodeData('compute-1').interfaces, {
      public: 'eth0',
      management: 'eth0',
      storage: 'eth1',
      private: 'eth1',
    })
    await shot('08-interfaces-saved')
    // the keyboard's way moves a network too (up: to "not on a NIC", down: back onto eth0); not saved
    await chip('public').focus()
    await page.keyboard.press('ArrowUp')
    await panel
      .getByRole('list', { name: 'Networks not on a NIC' })
      .getByRole('listitem', { name: 'public network' })
      .waitFor()
    assert.equal(
      await chip('public').evaluate((e) => e === (globalThis as any).document.activeElement),
      true,
      'the moved network keeps the focus',
    )
    await page.keyboard.press('ArrowDown')
    await nic('eth0').getByRole('listitem', { name: 'public network' }).waitFor()
    assert.equal(nodeData('compute-1').interfaces.public, 'eth0')
  })

  await step('deploy: a dry run, then a deploy to ready with live progress', async () => {
    await page.getByRole('link', { name: 'Deploy' }).click()
    await page.getByRole('button', { name: 'Dry run' }).click()
    const dry = page.getByRole('region', { name: 'Dry run' })
    await shownOrAlert(page, dry.getByText(/\d+ tasks would run/), 300_000)
    assert.match(await dry.innerText(), /xenserver-himn-attach/)
    await shot('09-dry-run')
    const himnVifs = () => (sim.db.get(lab.simulator!.refs.get('compute-1')!)!.VIFs as string[]).length
    assert.equal(himnVifs(), 2, 'the dry run attached nothing')

    const tDeploy = performance.now()
    await page.getByRole('button', { name: 'Deploy', exact: true }).click()
    await shownOrAlert(page, page.getByTestId('deployment-status').getByText('running'), 60_000)
    await page.getByRole('table', { name: 'Tasks of compute-1' }).waitFor()
    // live: a task of compute-1 has succeeded while the deployment still runs
    await page
      .getByRole('table', { name: 'Tasks of compute-1' })
      .locator('tr.status-succeeded')
      .first()
      .waitFor({ timeout: 300_000 })
    const midway = Number(await page.getByLabel('Overall progress').getAttribute('value'))
    await shot('10-deploying')
    const status = page.getByTestId('deployment-status')
    await status.getByText(/^(ready|error|stopped)$/).waitFor({ timeout: 900_000 })
    t.diagnostic(`deploy through the UI: ${Math.round(performance.now() - tDeploy)} ms`)
    await shot('11-deployed')
    assert.equal((await status.innerText()).trim(), 'ready', await page.locator('main').innerText())
    assert.ok(midway < 100, `progress was shown while running (${midway}%)`)
    assert.equal(await page.getByLabel('Overall progress').getAttribute('value'), '100')
    assert.equal(await page.getByLabel('Progress of compute-1').getAttribute('value'), '100')

    // the assignment was used: tenant VLANs on the bridge of the NIC the private network was dropped on
    const mapping = await lab.execOk('compute-1', ['grep', '-rh', '^bridge_mappings', '/etc/neutron'])
    assert.match(mapping.stdout, /^bridge_mappings\s*=\s*\S+:xenbr1$/m)
  })

  await step('nodes: the HIMN is plugged, its MAC and the guest address shown', async () => {
    await page.getByRole('link', { name: 'Nodes' }).click()
    const himn = page.getByTestId('himn-compute-1')
    await himn.getByText(/^plugged: VIF/).waitFor()
    const text = await himn.innerText()
    const vm = lab.simulator!.refs.get('compute-1')!
    const network = sim.db.find(
      'network',
      (r) => (r.other_config as Record<string, string>)?.is_host_internal_management_network === 'true',
    )
    const vif = (sim.db.get(vm)!.VIFs as string[])
      .map((r) => sim.db.get(r)! as Record<string, unknown>)
      .find((v) => v.network === network)!
    assert.ok(text.includes(`VIF ${String(vif.device)}, MAC ${String(vif.MAC).toLowerCase()}`), text)
    assert.match(text, /in the guest \S+ 169\.254\.\d+\.\d+\/16/)
    await page.getByRole('button', { name: 'Interfaces of compute-1' }).click()
    // the HIMN's NIC is listed under the guest's name for its MAC, and takes no network
    const guestName = /in the guest (\S+) /.exec(text)![1]
    const himnNic = page.getByRole('list', { name: `NIC ${guestName}` })
    assert.match(
      await himnNic.innerText(),
      new RegExp(`${String(vif.MAC).toLowerCase()}.*HIMN, configured by xenstack`),
    )
    assert.match(await nodesTable().innerText(), /pool /)
    await shot('12-nodes-himn')
  })

  await step('health: every set of the environment run to its end, nothing failed', async () => {
    await page.getByRole('link', { name: 'Health' }).click()
    const sets = page.getByRole('group', { name: 'Test sets' }).getByRole('checkbox')
    await sets.first().waitFor()
    const ids: string[] = []
    for (const box of await sets.all()) {
      await box.check()
      ids.push((await box.getAttribute('id'))!.replace(/^set-/, ''))
    }
    const tHealth = performance.now()
    await page.getByRole('button', { name: 'Run tests' }).click()
    for (const id of ids)
      await page
        .getByTestId(`run-status-${id}`)
        .getByText(/finished|stopped/)
        .waitFor({ timeout: 600_000 })
    t.diagnostic(`health, ${ids.length} sets: ${Math.round(performance.now() - tHealth)} ms`)
    await shot('13-health')
    const failed = page.locator('tr.status-failure, tr.status-error')
    const texts = await failed.allInnerTexts()
    assert.deepEqual(texts, [], 'no health check failed')
    assert.ok((await page.locator('tr.status-success').count()) > 5, 'the checks ran and passed')
    for (const id of ids) assert.match(await page.getByTestId(`run-status-${id}`).innerText(), /finished/)
  })

  assert.deepEqual(pageErrors, [], 'no script error in the page')

  function nodeData(name: string): Record<string, any> {
    return state.environments.nodes(ENV).find((n) => n.name === name)!.data
  }
})

/** Presses the mouse on `source`, moves it onto `target` in steps (the browser's own drag and drop) and lets go. */
async function dragOnto(page: Page, source: Locator, target: Locator): Promise<void> {
  // the mouse acts in the viewport: the panel is brought into it first
  await target.scrollIntoViewIfNeeded()
  await source.scrollIntoViewIfNeeded()
  const from = (await source.boundingBox())!
  const to = (await target.boundingBox())!
  await page.mouse.move(from.x + from.width / 2, from.y + from.height / 2)
  await page.mouse.down()
  await page.mouse.move(from.x + from.width / 2 + 5, from.y + from.height / 2 + 5, { steps: 3 })
  await page.mouse.move(to.x + to.width / 2, to.y + to.height / 2, { steps: 10 })
  await page.mouse.up()
  await target.getByRole('listitem', { name: (await source.getAttribute('aria-label'))! }).waitFor()
}

/** Waits for `what`, or fails with what the page's alert says when one shows first. */
async function shownOrAlert(page: Page, what: Locator, timeout: number): Promise<void> {
  const alert = page.getByRole('alert')
  await what.or(alert).first().waitFor({ timeout })
  if (await alert.count()) throw new Error(`the page says: ${await alert.first().innerText()}`)
}

/** The text of the elements an element's aria-describedby names. */
async function describedBy(page: Page, locator: Locator): Promise<string> {
  const ids = ((await locator.getAttribute('aria-describedby')) ?? '').split(/\s+/).filter(Boolean)
  const texts = await Promise.all(ids.map((id) => page.locator(`[id="${id}"]`).innerText()))
  return texts.join(' ')
}

/** The lab's hosts as node records, with the data `lab up` registers (lab/environment.ts): what the page must add. */
function labNodeRecords(desc: ReturnType<typeof describeLab>, pool: string) {
  return desc.hosts
    .filter((h) => h.role !== 'dom0')
    .map((h) => {
      const dom0 = h.role === 'compute' ? desc.hosts.find((d) => d.role === 'dom0' && d.xapiHost === h.xapiHost) : null
      const glance = desc.services.find((s) => s.name === 'glance' && s.host === h.name)
      return {
        name: h.name,
        data: {
          lab: desc.name,
          pool,
          xapiHost: h.xapiHost,
          vm: desc.refs[h.name],
          ssh: h.ssh,
          addresses: h.addresses,
          ...(dom0
            ? { dom0: { name: dom0.name, xapiHost: dom0.xapiHost, host: desc.refs[dom0.name], ssh: dom0.ssh } }
            : {}),
          ...(glance ? { glance: { url: glance.adminUrl ?? glance.url } } : {}),
        },
      }
    })
}
