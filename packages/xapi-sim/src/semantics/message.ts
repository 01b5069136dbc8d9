/** Messages (alerts): create/get/get_since/get_all_records/destroy/destroy_many. They appear as add/del events. */
import { XapiError } from '../errors.js'
import type { XapiRecord } from '../store.js'
import { nowXapi } from '../time.js'
import type { Simulator } from '../simulator.js'

const CLASS_TABLE: Record<string, string> = {
  VM: 'VM',
  Host: 'host',
  SR: 'SR',
  Pool: 'pool',
  VMPP: 'VMPP',
  VMSS: 'VMSS',
  PVS_proxy: 'PVS_proxy',
  VDI: 'VDI',
  Certificate: 'Certificate',
}

/** Normalises `2025-03-19T04:16:24.5Z` and `20250319T04:16:24Z` to the latter, which sorts as time does. */
function normDate(s: string): string {
  return s
    .replace(/-/g, '')
    .replace(/\.\d+/, '')
    .replace(/\+00:?00$/, 'Z')
}

export function installMessages(sim: Simulator): void {
  const d = sim.messages
  const db = sim.db
  const records = (pred: (r: XapiRecord) => boolean) => {
    const out: Record<string, XapiRecord> = {}
    for (const [ref, rec] of db.all('message')) if (pred(rec)) out[ref] = rec
    return out
  }
  d.implement('message.create', (_c, a) => {
    const [name, priority, cls, objUuid, body] = a as [string, number, string, string, string]
    const table = CLASS_TABLE[cls]
    if (!table) throw new XapiError('INVALID_VALUE', 'cls', cls)
    if (!db.refOfUuid(table, objUuid)) throw new XapiError('UUID_INVALID', table, objUuid)
    return db.create('message', { name, priority, cls, obj_uuid: objUuid, timestamp: nowXapi(), body })
  })
  d.implement('message.get_all_records', () => records(() => true))
  d.implement('message.get_since', (_c, a) => {
    const since = normDate(String(a[0]))
    return records((r) => String(r.timestamp) > since)
  })
  d.implement('message.get', (_c, a) => {
    const [cls, uuid, since] = a as string[]
    return records((r) => r.cls === cls && r.obj_uuid === uuid && String(r.timestamp) > normDate(String(since)))
  })
  d.implement('message.destroy', (_c, a) => {
    db.must('message', a[0])
    db.destroy(a[0] as string)
  })
  d.implement('message.destroy_many', (_c, a) => {
    for (const m of a[0] as string[]) db.must('message', m)
    for (const m of a[0] as string[]) db.destroy(m)
  })
}
