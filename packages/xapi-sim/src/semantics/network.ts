/**
 * Networks: network.create (bridge named when not given) and destroy, PIF plug/unplug/reconfigure_ip/introduce/
 * forget/scan, VLAN.create/destroy (and pool.create_VLAN_from_PIF), Bond.create/destroy.
 */
import { XapiError } from '../errors.js'
import { NULL_REF } from '../model.js'
import type { XapiRecord } from '../store.js'
import type { Simulator } from '../simulator.js'
import { constructorRecord } from './implicit.js'
import { randomMac } from '../builder.js'

export function installNetwork(sim: Simulator): void {
  const d = sim.messages
  const db = sim.db
  let bridges = 0

  d.implement('network.create', (_c, a) => {
    const rec = constructorRecord(sim, db.cls('network'), a[0] as XapiRecord)
    if (!rec.bridge) {
      const used = new Set(db.refs('network').map((n) => db.get(n)!.bridge))
      do bridges++
      while (used.has(`xapi${bridges}`))
      rec.bridge = `xapi${bridges}`
    }
    return db.create('network', rec)
  })
  d.implement('network.destroy', (_c, a) => {
    const net = db.must('network', a[0])
    for (const v of net.VIFs as string[])
      if (db.get(v)?.currently_attached) throw new XapiError('NETWORK_CONTAINS_VIF', [v].join(','))
    for (const p of net.PIFs as string[])
      if (db.get(p)?.currently_attached) throw new XapiError('NETWORK_CONTAINS_PIF', [p].join(','))
    db.destroy(a[0] as string)
  })

  d.implement('PIF.plug', (_c, a) => {
    db.must('PIF', a[0])
    db.set(a[0] as string, 'currently_attached', true)
  })
  d.implement('PIF.unplug', (_c, a) => {
    const pif = db.must('PIF', a[0])
    if (pif.management) throw new XapiError('PIF_IS_MANAGEMENT_INTERFACE', a[0])
    db.set(a[0] as string, 'currently_attached', false)
  })
  d.implement('PIF.reconfigure_ip', (_c, a) => {
    const [pif, mode, ip, netmask, gateway, dns] = a as string[]
    db.must('PIF', pif)
    if (mode === 'Static' && !/^\d+\.\d+\.\d+\.\d+$/.test(ip)) throw new XapiError('INVALID_IP_ADDRESS_SPECIFIED', 'IP')
    db.update(pif, { ip_configuration_mode: mode, IP: ip, netmask, gateway, DNS: dns })
  })
  d.implement('PIF.scan', (_c, a) => {
    db.must('host', a[0])
  })
  d.implement('PIF.introduce', (_c, a) => {
    const [host, mac, device, managed] = a as [string, string, string, boolean]
    db.must('host', host)
    if (db.find('PIF', (p) => p.host === host && p.device === device && p.VLAN === -1))
      throw new XapiError('DUPLICATE_PIF_DEVICE_NAME', device)
    const net = db.create('network', {
      name_label: `Pool-wide network associated with ${device}`,
      bridge: `xenbr${device.replace(/\D/g, '')}`,
    })
    return db.create('PIF', {
      host,
      MAC: mac || randomMac(),
      device,
      managed,
      network: net,
      physical: true,
      VLAN: -1,
      MTU: 1500,
      currently_attached: false,
    })
  })
  d.implement('PIF.forget', (_c, a) => {
    const pif = db.must('PIF', a[0])
    if (pif.management) throw new XapiError('PIF_IS_MANAGEMENT_INTERFACE', a[0])
    db.destroy(a[0] as string)
  })
  d.implement('PIF.destroy', (_c, a) => {
    const pif = db.must('PIF', a[0])
    if (pif.physical) throw new XapiError('PIF_IS_PHYSICAL', a[0])
    db.destroy(a[0] as string)
  })

  const createVlan = (tagged: string, tag: number, network: string): string => {
    const t = db.must('PIF', tagged)
    db.must('network', network)
    if (!Number.isInteger(tag) || tag < 0 || tag > 4094) throw new XapiError('VLAN_TAG_INVALID', tag)
    if (t.VLAN !== -1) throw new XapiError('PIF_IS_VLAN', tagged)
    for (const v of t.VLAN_slave_of as string[])
      if (db.get(v)?.tag === tag) throw new XapiError('PIF_VLAN_EXISTS', t.device)
    const untagged = db.create('PIF', {
      device: t.device,
      network,
      host: t.host,
      MAC: t.MAC,
      MTU: t.MTU,
      VLAN: tag,
      physical: false,
      currently_attached: true,
      ip_configuration_mode: 'None',
      managed: true,
    })
    return db.create('VLAN', { tagged_PIF: tagged, untagged_PIF: untagged, tag })
  }
  d.implement('VLAN.create', (_c, a) => createVlan(a[0] as string, a[1] as number, a[2] as string))
  d.implement('VLAN.destroy', (_c, a) => {
    const v = db.must('VLAN', a[0])
    const u = v.untagged_PIF as string
    db.destroy(a[0] as string)
    if (u !== NULL_REF && db.has('PIF', u)) db.destroy(u)
  })
  d.implement('pool.create_VLAN_from_PIF', (_c, a) => {
    const [pif, network, tag] = a as [string, string, number]
    const device = db.must('PIF', pif).device
    const out: string[] = []
    for (const p of db.where('PIF', (r) => r.device === device && r.VLAN === -1)) {
      const vlan = createVlan(p, tag, network)
      out.push(db.get(vlan)!.untagged_PIF as string)
    }
    return out
  })
  d.implement('pool.create_VLAN', (_c, a) => {
    const [device, network, tag] = a as [string, string, number]
    const out: string[] = []
    for (const p of db.where('PIF', (r) => r.device === device && r.VLAN === -1))
      out.push(db.get(createVlan(p, tag, network))!.untagged_PIF as string)
    return out
  })

  d.implement('Bond.create', (_c, a) => {
    const [network, members, mac, mode, properties] = a as [string, string[], string, string, Record<string, string>]
    db.must('network', network)
    if (members.length < 2) throw new XapiError('PIF_BOND_NEEDS_MORE_MEMBERS')
    const first = db.must('PIF', members[0])
    for (const m of members) {
      const p = db.must('PIF', m)
      if (p.host !== first.host) throw new XapiError('PIF_CANNOT_BOND_CROSS_HOST')
      if (p.bond_slave_of !== NULL_REF && db.has('Bond', p.bond_slave_of)) throw new XapiError('PIF_ALREADY_BONDED', m)
    }
    const host = first.host as string
    const n = db.where('PIF', (p) => p.host === host && String(p.device).startsWith('bond')).length
    const master = db.create('PIF', {
      device: `bond${n}`,
      network,
      host,
      MAC: mac || first.MAC,
      MTU: first.MTU,
      VLAN: -1,
      physical: false,
      currently_attached: true,
      ip_configuration_mode: 'None',
      managed: true,
    })
    const bond = db.create('Bond', {
      master,
      primary_slave: members[0],
      mode: mode || 'balance-slb',
      properties,
      links_up: members.length,
    })
    for (const m of members) db.set(m, 'bond_slave_of', bond)
    return bond
  })
  d.implement('Bond.destroy', (_c, a) => {
    const b = db.must('Bond', a[0])
    for (const s of b.slaves as string[]) if (db.has('PIF', s)) db.set(s, 'bond_slave_of', NULL_REF)
    const m = b.master as string
    db.destroy(a[0] as string)
    if (db.has('PIF', m)) db.destroy(m)
  })
}
