/**
 * `xenstack devstack install HOST` (issue 13 §2): the flow of os-xenapi's install-devstack-xen.sh and
 * install_on_xen_host.sh as ordered steps, each of which reads before it acts (so a converged pool gets no change and
 * a dry run changes nothing) and is recorded in a progress file when it finishes or stops the run:
 *
 *   prerequisites → networks → template → [export-template] → domu → domu-access → dom0-keys → devstack-source
 *   → devstack-files → wait → tempest
 *
 * A step that needs something this machine cannot reach (the Ubuntu mirror, the devstack source) stops the run as
 * `blocked` with a message naming the URL, after every earlier step is done and recorded; the next run re-checks the
 * earlier steps (nothing to do) and continues. What xenstack creates carries other_config `xenstack_devstack=<role>`;
 * a same-named DomU without it is never taken over. Networks are looked up by bridge, then by name label, as the
 * original's setup_network did, and reused.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { Xapi } from '@xenstack/xenapi'
import {
  AuthorizedKey,
  CommandResource,
  DirectoryResource,
  FileResource,
  KnownHost,
  Secret,
  apply,
  pendingChanges,
  plan,
  type Executor,
  type Resource,
} from '../../node/index.js'
import {
  AUTHORIZED_KEYS_XENSTORE,
  DEVSTACK_KEY,
  DOMU_INTERFACES,
  type DevstackConfig,
  type Passwords,
} from './config.js'
import type { ProgressFile } from './progress.js'
import {
  LOCAL_CONF_PATH,
  PID_PATH,
  RUN_SH_PATH,
  STACK_HOME,
  STACK_LOG,
  SUCCEEDED_PATH,
  UNIT_PATH,
  installerBootArgs,
  renderLocalConf,
  renderPreseed,
  renderRunSh,
  renderUnit,
  tempestCommand,
} from './render.js'
import { exportXvaFile, importXvaFile } from './xva-transfer.js'
import { newVifRecord } from '../../integration/vif-record.js'

const NULL_REF = 'OpaqueRef:NULL'
const MiB = 1024 ** 2
const GiB = 1024 ** 3
export const PRESEED_DOM0_PATH = '/opt/xensource/www/xenstack-devstack-preseed.cfg'
/** XenServer's own templates for the releases it knew, else the generic one. */
const UBUNTU_TEMPLATES: Record<string, string> = {
  xenial: 'Ubuntu Xenial Xerus 16.04',
  bionic: 'Ubuntu Bionic Beaver 18.04',
}
const GENERIC_TEMPLATE = 'Other install media'

/** A failure the operator must act on (wrong version, SR type, a name already taken, …). */
export class DevstackError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'DevstackError'
  }
}

/** A step cannot go on until something outside (a URL, an installer) is ready; a re-run continues here. */
export class DevstackBlocked extends DevstackError {
  constructor(message: string) {
    super(message)
    this.name = 'DevstackBlocked'
  }
}

export interface SshAddress {
  user: string
  host: string
  port: number
}

export interface DevstackTargets {
  xapi: Xapi
  cfg: DevstackConfig
  passwords: Passwords
  progress: ProgressFile
  /** Where the preseed file is written for the operator to see (and serve, with --preseed-url). */
  workDir: string
  /** dom0 over verified SSH (--dom0-ssh); needed for the preseed upload and the key exchange. */
  dom0?: Executor
  /** Opens the DomU over verified SSH once its address is known (--ssh-key); undefined: no key given. */
  openDomU?: (address: SshAddress) => Executor
  /** --domu-ssh: the DomU's address instead of the one its guest agent reports. */
  domuAddress?: SshAddress
  templateXva?: string
  exportTemplate?: string
  /** The installer fetches the answers file here instead of from dom0's web server. */
  preseedUrl?: string
  /** --force-sr-replace: asked before the default SR is replaced; false stops the run. */
  confirmSrReplace?: (sr: { name: string; uuid: string; type: string }) => Promise<boolean>
  installTimeoutMs?: number
  bootTimeoutMs?: number
  /** Reachability probe for mirror and source URLs (tests give a short one). */
  probeTimeoutMs?: number
  log?: (line: string) => void
}

export type StepState = 'changed' | 'unchanged' | 'would change' | 'blocked' | 'failed' | 'not reached'

export interface StepReport {
  id: string
  title: string
  state: StepState
  changes: string[]
  notes: string[]
  message?: string
}

export interface DevstackResult {
  host: string
  domU: string
  dryRun: boolean
  changed: boolean
  /** Steps the previous run had recorded as done. */
  previouslyDone: string[]
  steps: StepReport[]
  progressFile: string
  /** Set when the run stopped (blocked or failed): the step and why. */
  stopped?: { step: string; state: 'blocked' | 'failed'; message: string }
  exported?: { file: string; bytes: number }
}

interface Ctx {
  t: DevstackTargets
  dryRun: boolean
  host: { ref: string; name: string }
  networks: Partial<Record<(typeof DOMU_INTERFACES)[number], string>>
  template?: string
  domu?: string
  domuExec?: Executor
  /** Nothing after this can be planned in a dry run (what it needs does not exist yet). */
  planEnds?: string
  systemd?: boolean
}

interface StepOutcome {
  changes: string[]
  notes?: string[]
  /** Stop after this step with success (export-template). */
  finish?: boolean
}

interface Step {
  id: string
  title: string
  enabled?: (t: DevstackTargets) => boolean
  run(ctx: Ctx): Promise<StepOutcome>
}

const call = (ctx: Ctx, m: string, ...a: unknown[]) => ctx.t.xapi.call(m, ...a)

// ---- 1. prerequisites --------------------------------------------------------------------------------------------

async function prerequisites(ctx: Ctx): Promise<StepOutcome> {
  // dom0 is reached (its host key verified) before anything changes, so a refused dom0 leaves the pool as it was
  if (ctx.t.dom0)
    try {
      await ctx.t.dom0.run(['true'], { timeoutMs: 60_000 })
    } catch (e) {
      throw new DevstackError(`dom0 ${ctx.t.dom0.host} over SSH: ${(e as Error).message}`)
    }
  const sv = (await call(ctx, 'host.get_software_version', ctx.host.ref)) as Record<string, string>
  const version = sv.product_version ?? sv.platform_version
  const [major] = String(version ?? '')
    .split('.')
    .map(Number)
  if (!version || !(major >= 7))
    throw new DevstackError(
      `host ${ctx.host.name}: software_version.product_version is ${version ?? '(missing)'}; devstack on XenServer needs 7.0 or later`,
    )
  const pool = ((await call(ctx, 'pool.get_all')) as string[])[0]
  const srRef = (await call(ctx, 'pool.get_default_SR', pool)) as string
  if (!srRef || srRef === NULL_REF)
    throw new DevstackError(
      'the pool has no default SR (xe pool-param-set default-SR=<uuid>); devstack needs an ext or nfs one',
    )
  const sr = (await call(ctx, 'SR.get_record', srRef)) as {
    uuid: string
    name_label: string
    type: string
    PBDs: string[]
  }
  const notes = [`XenServer ${version} (${sv.product_brand ?? 'XenServer'}), default SR ${sr.name_label} (${sr.type})`]
  if (sr.type === 'ext' || sr.type === 'nfs') return { changes: [], notes }
  if (!ctx.t.confirmSrReplace)
    throw new DevstackError(
      `default SR ${sr.name_label} (uuid ${sr.uuid}) is of type ${sr.type}; devstack needs ext or nfs (a file SR for direct_vhd). ` +
        '--force-sr-replace replaces it with an ext SR on the same device, destroying its contents',
    )
  const pbds = await Promise.all(
    sr.PBDs.map(async (p) => ({
      ref: p,
      rec: (await call(ctx, 'PBD.get_record', p)) as {
        host: string
        device_config: Record<string, string>
        currently_attached: boolean
      },
    })),
  )
  const onHost = pbds.find((p) => p.rec.host === ctx.host.ref) ?? pbds[0]
  if (!onHost?.rec.device_config.device)
    throw new DevstackError(
      `default SR ${sr.name_label} (uuid ${sr.uuid}) has no PBD with a device_config device to re-create it on`,
    )
  const device = onHost.rec.device_config.device
  const change = `replace default SR ${sr.name_label} (${sr.type}, uuid ${sr.uuid}) with an ext SR on ${device}`
  if (ctx.dryRun) return { changes: [change], notes }
  if (!(await ctx.t.confirmSrReplace({ name: sr.name_label, uuid: sr.uuid, type: sr.type })))
    throw new DevstackError(
      `replacing default SR ${sr.name_label} (uuid ${sr.uuid}) was not confirmed; nothing changed`,
    )
  log(ctx, change)
  for (const p of pbds) if (p.rec.currently_attached) await call(ctx, 'PBD.unplug', p.ref)
  await call(ctx, 'SR.destroy', srRef)
  const fresh = (await call(
    ctx,
    'SR.create',
    ctx.host.ref,
    { device },
    0,
    sr.name_label,
    'xenstack devstack: ext SR',
    'ext',
    'user',
    false,
    {},
  )) as string
  await call(ctx, 'pool.set_default_SR', pool, fresh)
  await call(ctx, 'pool.set_suspend_image_SR', pool, fresh)
  return { changes: [change], notes }
}

// ---- 2. networks -------------------------------------------------------------------------------------------------

async function networks(ctx: Ctx): Promise<StepOutcome> {
  const pifs = (await call(ctx, 'PIF.get_all_records')) as Record<
    string,
    { host: string; management: boolean; network: string; device: string }
  >
  const mgmt = Object.values(pifs).find((p) => p.host === ctx.host.ref && p.management)
  if (!mgmt) throw new DevstackError(`host ${ctx.host.name}: no management PIF (PIF.management=true)`)
  ctx.networks.management = mgmt.network
  const all = (await call(ctx, 'network.get_all_records')) as Record<
    string,
    { name_label: string; bridge: string; uuid: string }
  >
  const changes: string[] = []
  const notes: string[] = [`management = ${all[mgmt.network]?.name_label ?? mgmt.network} (${mgmt.device})`]
  for (const [role, name] of [
    ['vm', ctx.t.cfg.vmNetwork],
    ['public', ctx.t.cfg.publicNetwork],
  ] as const) {
    let found = Object.entries(all).filter(([, n]) => n.bridge === name)
    if (found.length === 0) found = Object.entries(all).filter(([, n]) => n.name_label === name)
    if (found.length > 1)
      throw new DevstackError(
        `${role} network "${name}": ${found.length} networks match by bridge or name label (${found.map(([, n]) => n.uuid).join(', ')}); expected one — rename the others or give --${role === 'vm' ? 'vm' : 'public'}-network`,
      )
    if (found.length === 1) {
      ctx.networks[role] = found[0][0]
      notes.push(`${role} = ${found[0][1].name_label} (${found[0][1].bridge})`)
      continue
    }
    changes.push(`create ${role} network "${name}"`)
    if (ctx.dryRun) continue
    log(ctx, changes[changes.length - 1])
    ctx.networks[role] = (await call(ctx, 'network.create', {
      name_label: name,
      name_description: `xenstack devstack: ${role} network`,
      MTU: 1500,
      other_config: { assume_network_is_shared: 'true', [DEVSTACK_KEY]: role },
      tags: [],
    })) as string
  }
  return { changes, notes }
}

// ---- 3. template -------------------------------------------------------------------------------------------------

type VmRec = {
  uuid: string
  name_label: string
  is_a_template: boolean
  is_control_domain: boolean
  is_default_template?: boolean
  power_state: string
  other_config: Record<string, string>
  VIFs: string[]
  VBDs: string[]
  memory_static_max: number
  xenstore_data: Record<string, string>
  guest_metrics: string
}

async function vms(ctx: Ctx): Promise<[string, VmRec][]> {
  return Object.entries((await call(ctx, 'VM.get_all_records')) as Record<string, VmRec>)
}

async function template(ctx: Ctx): Promise<StepOutcome> {
  const { cfg } = ctx.t
  const all = await vms(ctx)
  const found = all.filter(([, v]) => v.is_a_template && v.name_label === cfg.templateName)
  if (found.length > 1)
    throw new DevstackError(
      `${found.length} templates are named ${cfg.templateName} (${found.map(([, v]) => v.uuid).join(', ')}); expected one`,
    )
  if (found.length === 1) {
    ctx.template = found[0][0]
    return { changes: [], notes: [`template ${cfg.templateName} (uuid ${found[0][1].uuid})`] }
  }
  if (ctx.t.templateXva) {
    const change = `import template ${cfg.templateName} from ${ctx.t.templateXva} (PUT /import)`
    if (ctx.dryRun) return planEnds(ctx, 'template', [change])
    log(ctx, change)
    const imported = await importXvaFile(ctx.t.xapi, ctx.t.templateXva)
    if (imported.length !== 1)
      throw new DevstackError(`${ctx.t.templateXva}: held ${imported.length} VMs; expected the one template VM`)
    const vm = imported[0]
    await call(ctx, 'VM.set_is_a_template', vm, true)
    await call(ctx, 'VM.set_name_label', vm, cfg.templateName)
    await call(ctx, 'VM.remove_from_other_config', vm, DEVSTACK_KEY)
    await call(ctx, 'VM.add_to_other_config', vm, DEVSTACK_KEY, 'template')
    ctx.template = vm
    return { changes: [change] }
  }
  return buildTemplate(ctx, all)
}

function planEnds(ctx: Ctx, step: string, changes: string[]): StepOutcome {
  ctx.planEnds ??= step
  return { changes }
}

/** The preseeded netinstall through XAPI (create_ubuntu_template.sh): the installer powering off is the end. */
async function buildTemplate(ctx: Ctx, all: [string, VmRec][]): Promise<StepOutcome> {
  const { cfg } = ctx.t
  const installers = all.filter(([, v]) => !v.is_a_template && v.other_config?.[DEVSTACK_KEY] === 'template-install')
  if (installers.length > 1)
    throw new DevstackError(
      `${installers.length} template installer VMs exist (${installers.map(([, v]) => v.uuid).join(', ')}); destroy all but one`,
    )
  const changes: string[] = []
  let installer = installers[0]?.[0]
  if (!installer) {
    const probe = mirrorProbeUrl(cfg)
    const steps = [
      `check the Ubuntu mirror ${cfg.mirror} (${probe})`,
      `write the preseed answers${ctx.t.preseedUrl ? ` (served at ${ctx.t.preseedUrl})` : ` to dom0 ${PRESEED_DOM0_PATH}`}`,
      `create the installer VM ${cfg.templateName} (${cfg.diskGiB} GiB disk, install-repository ${cfg.mirror}) and start the netinstall`,
      `wait for the installer to power off, then make it the template ${cfg.templateName}`,
    ]
    if (ctx.dryRun) return planEnds(ctx, 'template', steps)
    await requireReachable(ctx, probe, cfg.mirror, 'the Ubuntu mirror', '--mirror URL, or --template-xva FILE')
    const base = await installBase(ctx, all)
    const preseedUrl = await publishPreseed(ctx)
    log(ctx, steps[2])
    installer = (await call(ctx, 'VM.clone', base, cfg.templateName)) as string
    for (const k of ['default_template', 'disks', 'install-repository', DEVSTACK_KEY])
      await call(ctx, 'VM.remove_from_other_config', installer, k)
    await call(ctx, 'VM.add_to_other_config', installer, DEVSTACK_KEY, 'template-install')
    await call(ctx, 'VM.add_to_other_config', installer, 'install-repository', cfg.mirror)
    const sr = (await call(ctx, 'pool.get_default_SR', ((await call(ctx, 'pool.get_all')) as string[])[0])) as string
    const srUuid = (await call(ctx, 'SR.get_uuid', sr)) as string
    await call(
      ctx,
      'VM.add_to_other_config',
      installer,
      'disks',
      `<provision><disk device="0" size="${cfg.diskGiB * GiB}" sr="${srUuid}" bootable="true" type="system"/></provision>`,
    )
    await call(ctx, 'VM.set_PV_args', installer, installerBootArgs(preseedUrl))
    await call(ctx, 'VM.set_memory_limits', installer, 2 * GiB, 2 * GiB, 2 * GiB, 2 * GiB)
    // as xe vm-install: provisioned (its disk made from other_config:disks) while still a template
    await call(ctx, 'VM.provision', installer)
    await call(ctx, 'VM.set_is_a_template', installer, false)
    await createVif(ctx, installer, '0', ctx.networks.management!)
    await call(ctx, 'VM.start', installer, false, false)
    ctx.t.progress.note('installer', (await call(ctx, 'VM.get_uuid', installer)) as string)
    changes.push(...steps)
  } else {
    const { uuid, power_state } = installers[0][1]
    // only a VM this record saw started has run the installer; a halted one that never started holds no system
    if (power_state === 'Halted' && ctx.t.progress.record.notes.installer !== uuid)
      throw new DevstackError(
        `template installer VM ${uuid} is halted but was never started (an earlier run stopped while creating it); ` +
          `remove it (xe vm-uninstall uuid=${uuid} force=true) and run again`,
      )
    changes.push(`continue with the template installer VM (uuid ${uuid}, ${power_state})`)
  }
  if (ctx.dryRun) return planEnds(ctx, 'template', changes)

  const deadline = Date.now() + (ctx.t.installTimeoutMs ?? 3600_000)
  let state = (await call(ctx, 'VM.get_power_state', installer)) as string
  while (state !== 'Halted') {
    if (Date.now() > deadline) {
      const uuid = (await call(ctx, 'VM.get_uuid', installer)) as string
      throw new DevstackBlocked(
        `the template installer VM (uuid ${uuid}) is still ${state} after ${Math.round((ctx.t.installTimeoutMs ?? 3600_000) / 1000)} s: ` +
          `watch its console (xe console uuid=${uuid}); a re-run continues waiting for it`,
      )
    }
    await sleep(1000)
    state = (await call(ctx, 'VM.get_power_state', installer)) as string
  }
  await call(ctx, 'VM.set_PV_args', installer, '')
  await call(ctx, 'VM.set_is_a_template', installer, true)
  await call(ctx, 'VM.remove_from_other_config', installer, DEVSTACK_KEY)
  await call(ctx, 'VM.add_to_other_config', installer, DEVSTACK_KEY, 'template')
  ctx.t.progress.note('installer', undefined)
  ctx.template = installer
  changes.push(`the installer powered off: ${cfg.templateName} is a template`)
  return { changes }
}

/** The mirror's Release file for the release: what the installer fetches first. */
export function mirrorProbeUrl(cfg: DevstackConfig): string {
  return `${cfg.mirror.replace(/\/+$/, '')}/dists/${cfg.ubuntuRelease}/Release`
}

/**
 * The template the installer VM is cloned from: XenServer's own for the release, else "Other install media" — only
 * one whose other_config:install-methods allows a network install (XenServer lists `http` for its Linux templates;
 * an install-repository on a cdrom-only template would never be used).
 */
async function installBase(ctx: Ctx, all: [string, VmRec][]): Promise<string> {
  const wanted = UBUNTU_TEMPLATES[ctx.t.cfg.ubuntuRelease]
  const why: string[] = []
  for (const name of [wanted, GENERIC_TEMPLATE].filter(Boolean)) {
    const t = all
      .filter(([, v]) => v.is_a_template && v.name_label === name)
      .sort(([, a], [, b]) => Number(b.is_default_template === true) - Number(a.is_default_template === true))
    if (!t.length) {
      why.push(`no template "${name}"`)
      continue
    }
    const methods = t[0][1].other_config?.['install-methods']
    if (methods !== undefined && !methods.split(',').includes('http')) {
      why.push(`"${name}" installs from ${methods} only (other_config:install-methods), not over http`)
      continue
    }
    return t[0][0]
  }
  throw new DevstackError(
    `no template to netinstall Ubuntu ${ctx.t.cfg.ubuntuRelease} from: ${why.join('; ')}. Import one with --template-xva FILE`,
  )
}

async function publishPreseed(ctx: Ctx): Promise<string> {
  const text = renderPreseed(ctx.t.cfg)
  const local = join(ctx.t.workDir, 'preseed.cfg')
  mkdirSync(dirname(local), { recursive: true, mode: 0o700 })
  writeFileSync(local, text, { mode: 0o644 })
  if (ctx.t.preseedUrl) {
    log(ctx, `preseed written to ${local}; the installer fetches it from ${ctx.t.preseedUrl}`)
    return ctx.t.preseedUrl
  }
  if (!ctx.t.dom0)
    throw new DevstackError(
      `the installer needs the preseed answers over HTTP: give --dom0-ssh (served by dom0's web server from ${PRESEED_DOM0_PATH}) or serve ${local} yourself and pass --preseed-url URL`,
    )
  await applyOn(ctx.t.dom0, 'dom0', [
    // XenServer ships this web root (xapi serves it on port 80); made when missing
    new DirectoryResource({ path: dirname(PRESEED_DOM0_PATH), mode: 0o755 }),
    new FileResource({ path: PRESEED_DOM0_PATH, content: text, mode: 0o644 }),
  ])
  return `http://${ctx.t.cfg.host}/${PRESEED_DOM0_PATH.split('/').pop()}`
}

// ---- 3b. export-template -----------------------------------------------------------------------------------------

async function exportTemplate(ctx: Ctx): Promise<StepOutcome> {
  const file = ctx.t.exportTemplate!
  const change = `export template ${ctx.t.cfg.templateName} to ${file} (GET /export)`
  if (ctx.dryRun || !ctx.template) return { changes: [change], finish: true }
  log(ctx, change)
  const bytes = await exportXvaFile(ctx.t.xapi, ctx.template, file)
  return { changes: [change], notes: [`${file}: ${bytes} bytes`], finish: true }
}

// ---- 4. the DomU -------------------------------------------------------------------------------------------------

async function domu(ctx: Ctx): Promise<StepOutcome> {
  const { cfg } = ctx.t
  const all = await vms(ctx)
  const same = all.filter(([, v]) => !v.is_a_template && !v.is_control_domain && v.name_label === cfg.domuName)
  const ours = same.filter(([, v]) => v.other_config?.[DEVSTACK_KEY] === 'domu')
  if (ours.length > 1)
    throw new DevstackError(
      `${ours.length} DomUs named ${cfg.domuName} carry other_config:${DEVSTACK_KEY}=domu; expected one`,
    )
  if (ours.length === 0 && same.length > 0)
    throw new DevstackError(
      `VM ${cfg.domuName} (uuid ${same[0][1].uuid}) exists but xenstack did not create it (no other_config:${DEVSTACK_KEY}); ` +
        `rename it, give --domu-name, or to use it: xe vm-param-set uuid=${same[0][1].uuid} other-config:${DEVSTACK_KEY}=domu`,
    )
  const changes: string[] = []
  let vm = ours[0]?.[0]
  let rec = ours[0]?.[1]
  if (!vm) {
    changes.push(`create DomU ${cfg.domuName} from ${cfg.templateName}`)
    if (ctx.dryRun) {
      changes.push(
        `DomU ${cfg.domuName}: ${cfg.memoryMiB} MiB; eth0 management, eth1 ${cfg.vmNetwork}, eth2 ${cfg.publicNetwork}; operator key in xenstore; start it`,
      )
      return planEnds(ctx, 'domu', changes)
    }
    log(ctx, changes[0])
    vm = (await call(ctx, 'VM.clone', ctx.template, cfg.domuName)) as string
    await call(ctx, 'VM.set_is_a_template', vm, false)
    for (const k of ['default_template', 'disks', 'install-repository', DEVSTACK_KEY])
      await call(ctx, 'VM.remove_from_other_config', vm, k)
    await call(ctx, 'VM.add_to_other_config', vm, 'os-vpx', 'true')
    await call(ctx, 'VM.add_to_other_config', vm, DEVSTACK_KEY, 'domu')
    await call(ctx, 'VM.set_name_description', vm, 'xenstack devstack DomU')
    rec = (await call(ctx, 'VM.get_record', vm)) as VmRec
  }
  ctx.domu = vm
  const halted = rec!.power_state === 'Halted'
  const act = async (what: string, fn: () => Promise<unknown>) => {
    changes.push(what)
    if (ctx.dryRun) return
    log(ctx, what)
    await fn()
  }
  const mem = cfg.memoryMiB * MiB
  if (Number(rec!.memory_static_max) !== mem) {
    if (!halted)
      throw new DevstackError(
        `DomU ${cfg.domuName} is ${rec!.power_state} with ${Number(rec!.memory_static_max) / MiB} MiB; shut it down to set ${cfg.memoryMiB} MiB`,
      )
    await act(`DomU ${cfg.domuName}: memory ${Number(rec!.memory_static_max) / MiB} → ${cfg.memoryMiB} MiB`, () =>
      call(ctx, 'VM.set_memory_limits', vm, mem, mem, mem, mem),
    )
  }
  const vifs = await Promise.all(
    rec!.VIFs.map(async (v) => ({
      ref: v,
      ...((await call(ctx, 'VIF.get_record', v)) as { device: string; network: string }),
    })),
  )
  for (const [i, role] of DOMU_INTERFACES.entries()) {
    const want = ctx.networks[role]
    const have = vifs.find((v) => v.device === String(i))
    if (have && want && have.network === want) continue
    if (have && have.network !== want) {
      if (!halted)
        throw new DevstackError(
          `DomU ${cfg.domuName}: eth${i} is not on the ${role} network; shut it down so it can be moved`,
        )
      await act(`DomU ${cfg.domuName}: eth${i} moved to the ${role} network`, () =>
        call(ctx, 'VIF.move', have.ref, want),
      )
      continue
    }
    await act(`DomU ${cfg.domuName}: eth${i} on the ${role} network`, async () => {
      const ref = await createVif(ctx, vm!, String(i), want!)
      if (!halted) await call(ctx, 'VIF.plug', ref)
    })
  }
  if (cfg.publicKey && rec!.xenstore_data?.[AUTHORIZED_KEYS_XENSTORE] !== cfg.publicKey.trim())
    await act(`DomU ${cfg.domuName}: operator key in xenstore ${AUTHORIZED_KEYS_XENSTORE}`, async () => {
      await call(ctx, 'VM.remove_from_xenstore_data', vm, AUTHORIZED_KEYS_XENSTORE)
      await call(ctx, 'VM.add_to_xenstore_data', vm, AUTHORIZED_KEYS_XENSTORE, cfg.publicKey!.trim())
    })
  if (rec!.power_state !== 'Running') {
    if (rec!.power_state !== 'Halted')
      throw new DevstackError(`DomU ${cfg.domuName} is ${rec!.power_state}; expected Running or Halted`)
    await act(`start DomU ${cfg.domuName}`, () => call(ctx, 'VM.start', vm, false, false))
    if (ctx.dryRun) ctx.planEnds ??= 'domu'
  }
  return { changes }
}

async function createVif(ctx: Ctx, vm: string, device: string, network: string): Promise<string> {
  return (await call(ctx, 'VIF.create', newVifRecord(vm, network, device))) as string
}

// ---- 5. DomU access ----------------------------------------------------------------------------------------------

async function domuAccess(ctx: Ctx): Promise<StepOutcome> {
  const { t } = ctx
  if (!t.openDomU)
    throw new DevstackError(
      'the DomU steps (SSH keys, local.conf, devstack.service) need --ssh-key FILE: its public key goes to the DomU through xenstore, the private key logs in',
    )
  let address = t.domuAddress
  if (!address) {
    // find_ip_by_name: the guest agent reports eth0's address in VM_guest_metrics.networks
    const deadline = Date.now() + (t.bootTimeoutMs ?? 600_000)
    for (;;) {
      const gm = (await call(ctx, 'VM.get_guest_metrics', ctx.domu)) as string
      const nets =
        gm && gm !== NULL_REF ? ((await call(ctx, 'VM_guest_metrics.get_networks', gm)) as Record<string, string>) : {}
      if (nets['0/ip']) {
        address = { user: 'root', host: nets['0/ip'], port: 22 }
        break
      }
      if (ctx.dryRun)
        return planEnds(ctx, 'domu-access', ['connect to the DomU once its guest agent reports its address'])
      if (Date.now() > deadline)
        throw new DevstackBlocked(
          `DomU ${t.cfg.domuName} reported no address (VM_guest_metrics networks 0/ip) within ${Math.round((t.bootTimeoutMs ?? 600_000) / 1000)} s; is it booted with its guest agent? Or give --domu-ssh user@host`,
        )
      await sleep(2000)
    }
  }
  ctx.domuExec = t.openDomU(address)
  try {
    await ctx.domuExec.run(['true'], { timeoutMs: 60_000 })
  } catch (e) {
    throw new DevstackError(
      `DomU ${t.cfg.domuName} at ${address.user}@${address.host}:${address.port}: ${(e as Error).message}`,
    )
  }
  ctx.systemd = (await ctx.domuExec.run(['test', '-d', '/run/systemd/system'], { allowedExitCodes: [0, 1] })).code === 0
  return {
    changes: [],
    notes: [`DomU at ${address.user}@${address.host}:${address.port}${ctx.systemd ? '' : ' (no systemd running)'}`],
  }
}

// ---- 6. SSH keys between the DomU and dom0 -----------------------------------------------------------------------

const DOMZERO_HOME = '/home/domzero'

function userResources(): Resource[] {
  return [
    new CommandResource({
      name: 'user stack (home /opt/stack)',
      command: ['useradd', '--create-home', '--home-dir', STACK_HOME, '--shell', '/bin/bash', 'stack'],
      unless: ['id', '-u', 'stack'],
    }),
    new CommandResource({
      name: 'user domzero',
      command: ['useradd', '--create-home', '--home-dir', DOMZERO_HOME, '--shell', '/bin/bash', 'domzero'],
      unless: ['id', '-u', 'domzero'],
    }),
    new DirectoryResource({ path: `${DOMZERO_HOME}/.ssh`, mode: 0o700, owner: 'domzero', group: 'domzero' }),
    new CommandResource({
      name: "domzero's SSH key",
      command: [
        'su',
        '-s',
        '/bin/sh',
        'domzero',
        '-c',
        `ssh-keygen -q -t rsa -b 4096 -N '' -C domzero -f ${DOMZERO_HOME}/.ssh/id_rsa`,
      ],
      creates: `${DOMZERO_HOME}/.ssh/id_rsa.pub`,
    }),
  ]
}

async function dom0Keys(ctx: Ctx): Promise<StepOutcome> {
  const { t } = ctx
  if (!t.dom0)
    throw new DevstackError(
      "the key exchange needs dom0 over SSH: give --dom0-ssh root@HOST (dom0's host key pinned in --known-hosts)",
    )
  const domuExec = ctx.domuExec!
  const changes = await converge(ctx, domuExec, 'DomU', userResources())
  const pub = await domuExec.run(['cat', `${DOMZERO_HOME}/.ssh/id_rsa.pub`], { allowedExitCodes: [0, 1] })
  if (pub.code !== 0)
    return planEnds(ctx, 'dom0-keys', [
      ...changes,
      "authorize domzero's key for root on dom0",
      "pin dom0's host keys for domzero",
    ])
  const hostKeys = (
    await t.dom0.run(
      'cat /etc/ssh/ssh_host_ed25519_key.pub /etc/ssh/ssh_host_ecdsa_key.pub /etc/ssh/ssh_host_rsa_key.pub 2>/dev/null',
      {
        allowedExitCodes: [0, 1],
      },
    )
  ).stdout
    .split('\n')
    .filter((l) => /^(ssh|ecdsa)-/.test(l))
  if (hostKeys.length === 0)
    throw new DevstackError(`dom0 ${t.cfg.host}: no SSH host keys in /etc/ssh/ssh_host_*_key.pub`)
  changes.push(...(await converge(ctx, t.dom0, 'dom0', [new AuthorizedKey({ key: pub.stdout.trim(), user: 'root' })])))
  changes.push(
    ...(await converge(
      ctx,
      domuExec,
      'DomU',
      hostKeys.map((key) => new KnownHost({ host: t.cfg.host, key, user: 'domzero' })),
    )),
  )
  return { changes }
}

// ---- 7. devstack source, files, wait, tempest --------------------------------------------------------------------

/** The repositories the DomU clones (devstack by run.sh, os-xenapi by devstack's enable_plugin), probed from here. */
async function devstackSource(ctx: Ctx): Promise<StepOutcome> {
  const { cfg } = ctx.t
  const notes: string[] = []
  for (const [url, what, flag] of [
    [cfg.devstackUrl, 'the devstack source', '--devstack-url URL'],
    [cfg.osXenapiUrl, 'the os-xenapi source', '--os-xenapi-url URL'],
  ]) {
    if (ctx.dryRun) notes.push(`${what} ${url} is checked when run`)
    else if (!/^https?:/i.test(url)) notes.push(`${url}: not HTTP(S), reachability not checked from here`)
    else {
      await requireReachable(ctx, url, url, what, flag)
      notes.push(`${url} reachable`)
    }
  }
  return { changes: [], notes }
}

function devstackResources(ctx: Ctx): Resource[] {
  const { cfg, passwords } = ctx.t
  const localConf = renderLocalConf(cfg, { service: passwords.service.reveal(), xapi: passwords.xapi.reveal() })
  return [
    new DirectoryResource({ path: STACK_HOME, mode: 0o755, owner: 'stack', group: 'stack' }),
    new FileResource({
      path: LOCAL_CONF_PATH,
      content: new Secret(localConf),
      mode: 0o600,
      owner: 'stack',
      group: 'stack',
    }),
    new FileResource({ path: RUN_SH_PATH, content: renderRunSh(cfg), mode: 0o755, owner: 'stack', group: 'stack' }),
    new FileResource({ path: UNIT_PATH, content: renderUnit(), mode: 0o644 }),
  ]
}

async function devstackFiles(ctx: Ctx): Promise<StepOutcome> {
  const changes = await converge(ctx, ctx.domuExec!, 'DomU', devstackResources(ctx))
  if (!ctx.systemd)
    return {
      changes,
      notes: ['no systemd runs on the DomU: devstack.service is installed but cannot be started there'],
    }
  // started once: a later run must not restack (run.sh leaves its pid file; a reboot starts it again)
  changes.push(
    ...(await converge(ctx, ctx.domuExec!, 'DomU', [
      new CommandResource({
        name: 'enable and start devstack.service',
        command:
          'systemctl daemon-reload && systemctl enable devstack.service && systemctl start --no-block devstack.service',
        unless: `test -e ${PID_PATH} -o -e ${SUCCEEDED_PATH}`,
      }),
    ])),
  )
  return { changes }
}

async function waitForDevstack(ctx: Ctx): Promise<StepOutcome> {
  if (ctx.dryRun) return { changes: [], notes: [`would wait for ${SUCCEEDED_PATH} on the DomU`] }
  const exec = ctx.domuExec!
  const done = async () => (await exec.run(['test', '-e', SUCCEEDED_PATH], { allowedExitCodes: [0, 1] })).code === 0
  if (await done()) return { changes: [], notes: ['devstack has completed (runsh.succeeded)'] }
  if (!ctx.systemd)
    throw new DevstackError(
      `cannot wait for devstack on DomU ${ctx.t.cfg.domuName}: no systemd runs there, so devstack.service cannot run (use --no-wait)`,
    )
  const deadline = Date.now() + ctx.t.cfg.waitTimeoutS * 1000
  for (;;) {
    if (await done()) return { changes: [], notes: ['devstack has completed (runsh.succeeded)'] }
    const running = await exec.run(`test -s ${PID_PATH} && kill -0 "$(tail -n 1 ${PID_PATH})"`, {
      allowedExitCodes: [0, 1],
    })
    const active = await exec.run(['systemctl', 'is-active', 'devstack.service'], { allowedExitCodes: [0, 1, 3, 4] })
    if (running.code !== 0 && !/activating/.test(active.stdout)) {
      const tail = await exec.run(['tail', '-n', '20', STACK_LOG], { allowedExitCodes: [0, 1] })
      throw new DevstackError(
        `devstack on DomU ${ctx.t.cfg.domuName} ended without ${SUCCEEDED_PATH}; last lines of ${STACK_LOG}:\n${tail.stdout}`,
      )
    }
    if (Date.now() > deadline)
      throw new DevstackBlocked(
        `devstack on DomU ${ctx.t.cfg.domuName} still runs after ${ctx.t.cfg.waitTimeoutS} s; a re-run waits again`,
      )
    await sleep(10_000)
  }
}

async function tempest(ctx: Ctx): Promise<StepOutcome> {
  const { cfg } = ctx.t
  const cmd = tempestCommand(cfg.testType)!
  const line = `su -s /bin/sh stack -c '${cmd}'`
  if (ctx.dryRun) return { changes: [`run tempest (${cfg.testType}) on the DomU: ${line}`] }
  if (/^https?:/i.test(cfg.devstackUrl))
    await requireReachable(
      ctx,
      cfg.devstackUrl,
      cfg.devstackUrl,
      'the devstack source (tempest is installed by devstack)',
      '--devstack-url URL',
    )
  const exec = ctx.domuExec!
  if ((await exec.run(['test', '-e', SUCCEEDED_PATH], { allowedExitCodes: [0, 1] })).code !== 0)
    throw new DevstackError(
      `tempest (${cfg.testType}) needs a completed devstack on DomU ${cfg.domuName} (no ${SUCCEEDED_PATH}); it would run: ${line}`,
    )
  log(ctx, `tempest (${cfg.testType}): ${line}`)
  const r = await exec.run(line, { timeoutMs: 6 * 3600_000, allowedExitCodes: [0, 1] })
  const tail = r.stdout.split('\n').slice(-15).join('\n')
  if (r.code !== 0) throw new DevstackError(`tempest (${cfg.testType}) failed on DomU ${cfg.domuName}:\n${tail}`)
  return { changes: [`tempest (${cfg.testType}) passed`], notes: [tail] }
}

// ---- the runner --------------------------------------------------------------------------------------------------

export const STEPS: Step[] = [
  { id: 'prerequisites', title: 'XenServer ≥ 7.0, default SR ext or nfs', run: prerequisites },
  { id: 'networks', title: 'management, VM and public networks', run: networks },
  { id: 'template', title: 'Ubuntu template VM', run: template },
  {
    id: 'export-template',
    title: 'export the template to an XVA',
    enabled: (t) => !!t.exportTemplate,
    run: exportTemplate,
  },
  { id: 'domu', title: 'DomU from the template, three interfaces, started', run: domu },
  { id: 'domu-access', title: 'SSH to the DomU', run: domuAccess },
  { id: 'dom0-keys', title: 'SSH keys between the DomU (domzero) and dom0', run: dom0Keys },
  { id: 'devstack-source', title: 'devstack source reachable', run: devstackSource },
  { id: 'devstack-files', title: 'local.conf, run.sh and devstack.service on the DomU', run: devstackFiles },
  { id: 'wait', title: 'wait for devstack to finish', enabled: (t) => t.cfg.wait, run: waitForDevstack },
  { id: 'tempest', title: 'tempest', enabled: (t) => t.cfg.testType !== 'none', run: tempest },
]

export async function installDevstack(t: DevstackTargets, opts: { dryRun?: boolean } = {}): Promise<DevstackResult> {
  const dryRun = opts.dryRun === true
  const host = await masterHost(t.xapi)
  const ctx: Ctx = { t, dryRun, host, networks: {} }
  const result: DevstackResult = {
    host: host.name,
    domU: t.cfg.domuName,
    dryRun,
    changed: false,
    previouslyDone: t.progress.done(),
    steps: [],
    progressFile: t.progress.path,
  }
  let ended = false
  try {
    for (const step of STEPS) {
      if (step.enabled && !step.enabled(t)) continue
      const report: StepReport = { id: step.id, title: step.title, state: 'not reached', changes: [], notes: [] }
      result.steps.push(report)
      if (ended) continue
      try {
        const out = await step.run(ctx)
        report.changes = out.changes
        report.notes = out.notes ?? []
        report.state = out.changes.length === 0 ? 'unchanged' : dryRun ? 'would change' : 'changed'
        if (!dryRun) t.progress.mark(step.id, 'done')
        if (out.finish || (dryRun && ctx.planEnds)) ended = true
        if (out.finish && !dryRun)
          result.exported = {
            file: t.exportTemplate!,
            bytes: Number(/(\d+) bytes/.exec(report.notes.join(' '))?.[1] ?? 0),
          }
      } catch (e) {
        const blocked = e instanceof DevstackBlocked
        report.state = blocked ? 'blocked' : 'failed'
        report.message = (e as Error).message
        if (!dryRun) t.progress.mark(step.id, report.state as 'blocked' | 'failed', report.message)
        result.stopped = { step: step.id, state: report.state as 'blocked' | 'failed', message: report.message }
        ended = true
      }
    }
  } finally {
    await ctx.domuExec?.close().catch(() => undefined)
  }
  result.changed = result.steps.some((s) => s.changes.length > 0)
  return result
}

async function masterHost(xapi: Xapi): Promise<Ctx['host']> {
  const pool = ((await xapi.call('pool.get_all')) as string[])[0]
  const ref = (await xapi.call('pool.get_master', pool)) as string
  return { ref, name: (await xapi.call('host.get_name_label', ref)) as string }
}

/** Plans (dry run) or applies resources on one node; returns the changed (or to-be-changed) resource ids. */
async function converge(ctx: Ctx, exec: Executor, where: string, resources: Resource[]): Promise<string[]> {
  if (ctx.dryRun) {
    const entries = await plan(exec, resources)
    const broken = entries.find((e) => e.error)
    if (broken) throw new DevstackError(`${where} ${exec.host}: ${broken.id}: ${broken.error}`)
    return pendingChanges(entries).map((e) => `${where}: ${e.id}`)
  }
  return applyOn(exec, where, resources, ctx.t.log)
}

async function applyOn(
  exec: Executor,
  where: string,
  resources: Resource[],
  logLine?: (l: string) => void,
): Promise<string[]> {
  const report = await apply(exec, resources, { log: (m) => logLine?.(`${where}: ${m}`) })
  const failed = report.entries.find((r) => r.status === 'failed')
  if (failed) throw new DevstackError(`${where} ${exec.host}: ${failed.id}: ${failed.error ?? 'failed'}`)
  return report.entries.filter((r) => r.status === 'changed').map((r) => `${where}: ${r.id}`)
}

/** GET with a deadline from this machine; any HTTP answer below 500 means the server is there. */
export async function reachable(url: string, timeoutMs: number): Promise<{ ok: boolean; why: string }> {
  try {
    const res = await fetch(url, { method: 'GET', signal: AbortSignal.timeout(timeoutMs), redirect: 'follow' })
    await res.body?.cancel().catch(() => undefined)
    return res.status < 500 && res.status !== 404
      ? { ok: true, why: `HTTP ${res.status}` }
      : { ok: false, why: `HTTP ${res.status}` }
  } catch (e) {
    const err = e as Error & { cause?: { code?: string; message?: string } }
    return { ok: false, why: err.cause?.code ?? err.cause?.message ?? err.message }
  }
}

async function requireReachable(
  ctx: Ctx,
  probe: string,
  url: string,
  what: string,
  alternative: string,
): Promise<void> {
  const r = await reachable(probe, ctx.t.probeTimeoutMs ?? 15_000)
  if (r.ok) return
  const done = STEPS.map((s) => s.id).filter((id) => ctx.t.progress.record.steps[id]?.status === 'done')
  throw new DevstackBlocked(
    `${what} ${url} is unreachable from this machine (${probe}: ${r.why}). ` +
      `Make it reachable (or pass ${alternative}) and run the same command again: ` +
      `${done.length ? `${done.join(', ')} ${done.length === 1 ? 'is' : 'are'} done and recorded in ${ctx.t.progress.path}` : 'nothing was changed'}`,
  )
}

function log(ctx: Ctx, line: string): void {
  ctx.t.log?.(line)
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
