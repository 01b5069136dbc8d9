// The generated typed API (src/generated/, written by src/codegen/generate-api.ts): what it sends through the
// Caller, and what the types accept and refuse (the @ts-expect-error lines fail the build if a type loosens).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { requirePrerequisite } from '@xenstack/testkit'
import { loadModel } from '@xenstack/xapi-wire/codegen'
import {
  createApi,
  createAsyncApi,
  NULL_REF,
  type Ref,
  type VMRecord,
  type VmPowerState,
} from '../src/generated/index.js'
import { renderApi, renderTypes } from '../src/codegen/generate-api.js'

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..')
const datamodelJson =
  process.env.XENSTACK_DATAMODEL ?? join(repoRoot, '..', 'shared', 'reference', 'xenapi-datamodel.json')

function recorder(result: unknown = '') {
  const calls: [string, unknown[]][] = []
  const call = async (method: string, params: unknown[]): Promise<unknown> => {
    calls.push([method, params])
    return result
  }
  return { calls, call }
}

test('every message is a method that sends its wire name and positional params (no session)', async () => {
  const r = recorder()
  const api = createApi(r.call)
  const vm: Ref<'VM'> = 'OpaqueRef:vm'
  await api.VM.start(vm, false, true)
  await api.VM.get_record(vm)
  await api.VM.add_to_other_config(vm, 'k', 'v')
  await api.host.call_plugin('OpaqueRef:h', 'dom0_plugin_version.py', 'get_version', {})
  await api.event.from(['*'], '', 30)
  await api.VM_metrics.get_all_records()
  await api.VM.get_all_records_where('field "name__label"="x"')
  await api.event.inject('VM', vm) // the `class` parameter is renamed class_ in the signature only
  assert.deepEqual(r.calls, [
    ['VM.start', [vm, false, true]],
    ['VM.get_record', [vm]],
    ['VM.add_to_other_config', [vm, 'k', 'v']],
    ['host.call_plugin', ['OpaqueRef:h', 'dom0_plugin_version.py', 'get_version', {}]],
    ['event.from', [['*'], '', 30]],
    ['VM_metrics.get_all_records', []],
    ['VM.get_all_records_where', ['field "name__label"="x"']],
    ['event.inject', ['VM', vm]],
  ])
})

test('omitted trailing parameters with defaults are not sent', async () => {
  const r = recorder('OpaqueRef:session')
  const api = createApi(r.call)
  await api.session.login_with_password('root', 'pw')
  await api.session.login_with_password('root', 'pw', '1.1')
  await api.session.login_with_password('root', 'pw', '1.1', 'xenstack')
  await api.VM.snapshot('OpaqueRef:v', 'snap')
  assert.deepEqual(
    r.calls.map(([, p]) => p.length),
    [2, 3, 4, 2],
  )
})

test('constructors take one typed record; async API has only what XAPI serves as Async.*', async () => {
  const r = recorder('OpaqueRef:new')
  const api = createApi(r.call)
  const vif = {
    device: '0',
    network: 'OpaqueRef:n',
    VM: 'OpaqueRef:v',
    MAC: '',
    MTU: 1500,
    other_config: {},
    qos_algorithm_type: '',
    qos_algorithm_params: {},
  }
  assert.equal(await api.VIF.create(vif), 'OpaqueRef:new')
  assert.deepEqual(r.calls[0], ['VIF.create', [vif]])

  const a = recorder()
  const asyncApi = createAsyncApi(a.call)
  await asyncApi.VM.clean_shutdown('OpaqueRef:v')
  await asyncApi.VIF.create(vif)
  assert.deepEqual(
    a.calls.map(([m]) => m),
    ['VM.clean_shutdown', 'VIF.create'],
  )
  const asyncClasses = Object.keys(asyncApi)
  for (const none of ['session', 'event', 'task', 'data_source', 'blob']) assert.ok(!asyncClasses.includes(none), none)
  assert.equal((asyncApi.VM as unknown as Record<string, unknown>).get_power_state, undefined)
  assert.equal((asyncApi.VM as unknown as Record<string, unknown>).set_name_label, undefined)
  assert.equal(Object.keys(createApi(r.call)).length, 67)
  assert.equal(api.VM, api.VM, 'one instance per class')
})

test('types: refs are branded per class, enums are unions, records carry JS types', () => {
  const api = createApi(recorder().call)
  const host: Ref<'host'> = 'OpaqueRef:h'
  const plain: string = 'OpaqueRef:v'
  const typeChecks = (): void => {
    void api.VM.start(plain, false, false) // plain strings are accepted
    // @ts-expect-error a host ref is not a VM ref
    void api.VM.start(host, false, false)
    // @ts-expect-error VM.start takes three parameters
    void api.VM.start(plain, false)
    // @ts-expect-error VIF.create requires `device` (no datamodel default)
    void api.VIF.create({
      network: '',
      VM: '',
      MAC: '',
      MTU: 1,
      other_config: {},
      qos_algorithm_type: '',
      qos_algorithm_params: {},
    })
    // @ts-expect-error not a vm_power_state
    const bad: VmPowerState = 'Exploded'
    void bad
    const asyncApi = createAsyncApi(recorder().call)
    void asyncApi.VM.clone(plain, 'copy')
    // @ts-expect-error getters have no Async variant
    void asyncApi.VM.get_power_state(plain)
    // @ts-expect-error session has no Async variants
    void asyncApi.session
    // @ts-expect-error the session is not a parameter: the caller prepends it
    void api.VM.start('OpaqueRef:session', plain, false, false)
    const rec = {} as VMRecord
    const n: number = rec.memory_static_max
    const d: Date = rec.snapshot_time
    const s: VmPowerState = rec.power_state
    const r: Ref<'host'> = rec.resident_on
    void [n, d, s, r, NULL_REF]
  }
  void typeChecks
  assert.equal(NULL_REF, 'OpaqueRef:NULL')
})

test('the generator reproduces the committed files from the reference JSON', (t) => {
  if (!requirePrerequisite(t, `reference datamodel ${datamodelJson}`, () => existsSync(datamodelJson))) return
  const model = loadModel(datamodelJson)
  const dir = join(repoRoot, 'packages', 'xenapi', 'src', 'generated')
  const stale = 'run `npm run generate -w packages/xenapi` after building it'
  assert.ok(
    renderTypes(model, 'xenapi-datamodel.json') === readFileSync(join(dir, 'types.ts'), 'utf8'),
    `types.ts is stale: ${stale}`,
  )
  assert.ok(
    renderApi(model, 'xenapi-datamodel.json') === readFileSync(join(dir, 'api.ts'), 'utf8'),
    `api.ts is stale: ${stale}`,
  )
})
