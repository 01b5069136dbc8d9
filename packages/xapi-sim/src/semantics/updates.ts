/**
 * pool_update (7.x+) and pool_patch (≤ 7.0 hotfixes such as XS65ESP1013): list, introduce, precheck, apply with
 * UPDATE_ALREADY_APPLIED / PATCH_ALREADY_APPLIED, pool_apply, clean, destroy; applied updates appear in host.updates,
 * applied patches as host_patch rows in host.patches.
 */
import { XapiError } from '../errors.js'
import { NULL_REF } from '../model.js'
import { nowXapi } from '../time.js'
import type { Simulator } from '../simulator.js'

export function installUpdates(sim: Simulator): void {
  const d = sim.messages
  const db = sim.db

  d.implement('pool_update.introduce', (_c, a) => {
    const vdi = db.must('VDI', a[0])
    const name = String(vdi.name_label)
    const existing = db.find('pool_update', (u) => u.name_label === name)
    if (existing) throw new XapiError('UPDATE_ALREADY_EXISTS', db.get(existing)!.uuid)
    return db.create('pool_update', {
      name_label: name,
      name_description: String(vdi.name_description),
      version: (vdi.other_config as Record<string, string>).version ?? '1.0',
      installation_size: vdi.virtual_size,
      key: '',
      after_apply_guidance: [],
      vdi: a[0],
    })
  })
  const updateApplied = (upd: string, host: string) => (db.get(upd)!.hosts as string[]).includes(host)
  d.implement('pool_update.precheck', (_c, a) => {
    db.must('pool_update', a[0])
    db.must('host', a[1])
    if (updateApplied(a[0] as string, a[1] as string)) throw new XapiError('UPDATE_ALREADY_APPLIED', a[0])
    return 'ok'
  })
  const applyUpdate = (upd: string, host: string) => {
    if (updateApplied(upd, host)) throw new XapiError('UPDATE_ALREADY_APPLIED', upd)
    db.set(upd, 'hosts', [...(db.get(upd)!.hosts as string[]), host])
    db.set(host, 'updates', [...(db.get(host)!.updates as string[]), upd])
    const rec = db.get(upd)!
    const sv = { ...(db.get(host)!.software_version as Record<string, string>) }
    sv[`update_${String(rec.name_label)}`] = String(rec.version)
    db.set(host, 'software_version', sv)
  }
  d.implement('pool_update.apply', (_c, a) => {
    db.must('pool_update', a[0])
    db.must('host', a[1])
    applyUpdate(a[0] as string, a[1] as string)
  })
  d.implement('pool_update.pool_apply', (_c, a) => {
    db.must('pool_update', a[0])
    for (const h of db.refs('host')) if (!updateApplied(a[0] as string, h)) applyUpdate(a[0] as string, h)
  })
  d.implement('pool_update.pool_clean', (_c, a) => {
    db.must('pool_update', a[0])
    db.set(a[0] as string, 'vdi', NULL_REF)
  })
  d.implement('pool_update.destroy', (_c, a) => {
    const u = db.must('pool_update', a[0])
    if ((u.hosts as string[]).length > 0) throw new XapiError('UPDATE_IS_APPLIED')
    db.destroy(a[0] as string)
  })

  const patchOn = (patch: string, host: string) =>
    (db.get(patch)!.host_patches as string[]).find((hp) => db.get(hp)?.host === host)
  d.implement('pool_patch.precheck', (_c, a) => {
    db.must('pool_patch', a[0])
    db.must('host', a[1])
    if (patchOn(a[0] as string, a[1] as string)) throw new XapiError('PATCH_ALREADY_APPLIED', a[0])
    return ''
  })
  const applyPatch = (patch: string, host: string) => {
    if (patchOn(patch, host)) throw new XapiError('PATCH_ALREADY_APPLIED', patch)
    const p = db.get(patch)!
    db.create('host_patch', {
      name_label: p.name_label,
      name_description: p.name_description,
      version: p.version,
      host,
      pool_patch: patch,
      applied: true,
      timestamp_applied: nowXapi(),
      size: p.size,
    })
    const all = db.refs('host').every((h) => patchOn(patch, h))
    if (all) db.set(patch, 'pool_applied', true)
    return ''
  }
  d.implement('pool_patch.apply', (_c, a) => {
    db.must('pool_patch', a[0])
    db.must('host', a[1])
    return applyPatch(a[0] as string, a[1] as string)
  })
  d.implement('pool_patch.pool_apply', (_c, a) => {
    db.must('pool_patch', a[0])
    for (const h of db.refs('host')) if (!patchOn(a[0] as string, h)) applyPatch(a[0] as string, h)
  })
  d.implement('pool_patch.clean', (_c, a) => {
    db.must('pool_patch', a[0])
  })
  d.implement('pool_patch.pool_clean', (_c, a) => {
    db.must('pool_patch', a[0])
  })
  d.implement('pool_patch.clean_on_host', (_c, a) => {
    db.must('pool_patch', a[0])
  })
  d.implement('pool_patch.destroy', (_c, a) => {
    const p = db.must('pool_patch', a[0])
    for (const hp of p.host_patches as string[]) if (db.has('host_patch', hp)) db.destroy(hp)
    db.destroy(a[0] as string)
  })
}
