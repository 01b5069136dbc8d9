import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import {
  Expression,
  ExpressionEvaluationError,
  ExpressionSyntaxError,
  checkRestrictions,
  checkSettingChange,
  checkSettingChangeForRoles,
  evaluateExpression,
  normalizeRestriction,
  parseExpression,
  validateSettings,
  redactSettings,
} from '../src/index.js'

const models = {
  settings: {
    common: { libvirt_type: { value: 'qemu' }, debug: { value: false }, tags: { value: ['a', 'b'] } },
    storage: { volumes_ceph: { value: false }, volumes_lvm: { value: true } },
    'fuel-plugin-xenserver': { metadata: { enabled: true }, username: { value: 'root' } },
    nothing: { value: null },
  },
  cluster: { net_provider: 'neutron', mode: 'ha_compact', status: 'new' },
  version: { feature_groups: ['mirantis', 'experimental'] },
  networking_parameters: { segmentation_type: 'vlan' },
  release: { name: 'OpenStack on Ubuntu' },
  default: { answer: 42, flag: true },
}

// [expression, expected result, options] — every expected value computed by hand from Fuel's grammar.
const cases: [string, boolean, { strict?: boolean }?][] = [
  ["settings:common.libvirt_type.value == 'qemu'", true],
  ["settings:common.libvirt_type.value != 'qemu'", false],
  ['settings:common.debug.value == false', true],
  ['settings:common.debug.value', false],
  ['not settings:common.debug.value', true],
  // precedence: `not` binds tighter than `==`: (not false) == true
  ['not settings:common.debug.value == true', true],
  // `in` binds tighter than `==`: 'experimental' in [...] → true; true == true
  ["'experimental' in version:feature_groups == true", true],
  ["'experimental' in version:feature_groups", true],
  ["not ('advanced' in version:feature_groups)", true],
  ["'advanced' in version:feature_groups", false],
  ["'neu' in cluster:net_provider", true],
  ["'a' in settings:common.tags.value and 'c' in settings:common.tags.value", false],
  ["'a' in settings:common.tags.value or 'c' in settings:common.tags.value", true],
  // or < and: true or (false and false)
  ['true or false and false', true],
  // (true or false) and false would be false; check that parentheses change it
  ['(true or false) and false', false],
  ['settings:nothing.value == null', true],
  ['settings:nothing.value != null', false],
  ['null == null', true],
  ['null', false],
  ['0', false],
  ['1 == 1', true],
  ['1.5 == 1.5', true],
  ["1 == '1'", false],
  ['true == 1', false],
  ["cluster:net_provider == 'neutron' and networking_parameters:segmentation_type == 'vlan'", true],
  [
    "settings:common.libvirt_type.value != 'kvm' or not (cluster:net_provider == 'neutron' and networking_parameters:segmentation_type == 'vlan')",
    true,
  ],
  ["release:name == 'OpenStack on Ubuntu'", true],
  ['default:answer == 42', true],
  ['answer == 42', true],
  ['settings:fuel-plugin-xenserver.metadata.enabled == true', true],
  // non-strict: a missing path is null (how one plugin tests for another)
  ['settings:other_plugin == null or settings:other_plugin.metadata.enabled != true', true, { strict: false }],
  ['settings:other_plugin.metadata.enabled == true', false, { strict: false }],
  ['not settings:missing.value', true, { strict: false }],
  ["settings:common.libvirt_type.value == 'kvm' or settings:missing.value", false, { strict: false }],
  // short-circuit: the missing path is never read in strict mode
  ['false and settings:missing.value', false],
  ['true or settings:missing.value', true],
  ['"double" == \'double\'', true],
]

test('the evaluator agrees with the hand-computed table', () => {
  for (const c of cases) {
    const [src, expected, opts] = c
    assert.equal(evaluateExpression(src, models, opts), expected, src)
  }
})

test('a strict path that does not resolve is an error naming the path and column', () => {
  assert.throws(
    () => evaluateExpression("settings:common.missing.value == 'x'", models),
    (e: unknown) =>
      e instanceof ExpressionEvaluationError &&
      e.column === 1 &&
      /path "settings:common.missing.value" does not exist/.test(e.message),
  )
  assert.throws(() => evaluateExpression('true and nope:x.y', models), /unknown model "nope"/)
  assert.throws(() => evaluateExpression("'a' in settings:nothing.value", models), /right side of "in"/)
})

test('parse errors point at the column', () => {
  const expectColumn = (src: string, column: number, re: RegExp) =>
    assert.throws(
      () => parseExpression(src),
      (e: unknown) => e instanceof ExpressionSyntaxError && e.column === column && re.test(e.message),
      src,
    )
  expectColumn("settings:a.b = 'x'", 14, /expected "=="/)
  expectColumn("settings:a.b == 'x", 17, /unterminated string/)
  expectColumn('(true or false', 15, /expected "\)" but found end of expression/)
  expectColumn('true false', 6, /expected an operator or end of expression but found literal false/)
  expectColumn('true and', 9, /expected a value/)
  expectColumn('a == #', 6, /unexpected character "#"/)
  const e = (() => {
    try {
      parseExpression('true and')
    } catch (err) {
      return err as Error
    }
  })()!
  assert.match(e.message, /\n {2}true and\n {10}\^/)
})

test('paths() lists what an expression reads', () => {
  assert.deepEqual(new Expression("settings:a.b.value == 'x' and not cluster:mode").paths(), [
    'settings:a.b.value',
    'cluster:mode',
  ])
})

test('the three restriction forms and the actions', () => {
  assert.deepEqual(normalizeRestriction('a == b'), { condition: 'a == b', action: 'disable', strict: true })
  assert.deepEqual(normalizeRestriction({ 'cluster:mode == 1': 'msg' }), {
    condition: 'cluster:mode == 1',
    action: 'disable',
    message: 'msg',
    strict: true,
  })
  assert.deepEqual(normalizeRestriction({ condition: 'x', action: 'hide', strict: false }), {
    condition: 'x',
    action: 'hide',
    message: undefined,
    strict: false,
  })
  assert.throws(() => normalizeRestriction({ condition: 'x', action: 'explode' }), /one of disable, hide, none/)
  const list = [
    { condition: "cluster:net_provider == 'neutron'", action: 'hide', message: 'hidden with neutron' },
    { "settings:common.libvirt_type.value == 'qemu'": 'disabled with qemu' },
    { condition: 'settings:missing.x == null', action: 'none', message: 'just a warning', strict: false },
  ]
  assert.deepEqual(checkRestrictions(list, models, 'hide').messages, ['hidden with neutron'])
  assert.deepEqual(checkRestrictions(list, models, 'disable').messages, ['disabled with qemu'])
  assert.deepEqual(checkRestrictions(list, models, 'none').messages, ['just a warning'])
  assert.equal(checkRestrictions(list, models).matched.length, 3)
})

const xenSettings = () => ({
  common: {
    metadata: { label: 'Common' },
    libvirt_type: {
      type: 'radio',
      label: 'Hypervisor type',
      value: 'qemu',
      values: [{ data: 'qemu' }, { data: 'kvm' }],
    },
  },
  additional_components: {
    metadata: { label: 'Additional components' },
    sahara: { type: 'checkbox', label: 'Install Sahara', value: false },
    ceilometer: { type: 'checkbox', label: 'Install Ceilometer', value: true },
    mongo: {
      type: 'checkbox',
      label: 'Use external Mongo',
      value: true,
      restrictions: [{ 'settings:additional_components.ceilometer.value == false': 'Mongo needs Ceilometer' }],
    },
  },
  'fuel-plugin-xenserver': {
    metadata: {
      class: 'plugin',
      label: 'XenServer Plugin',
      enabled: true,
      restrictions: [
        "settings:common.libvirt_type.value == 'kvm'",
        'settings:additional_components.sahara.value == true',
      ],
    },
    password: {
      type: 'password',
      label: 'Password',
      value: 's3cret!',
      regex: { source: '\\S', error: 'Password cannot be empty' },
    },
  },
})

test('switching off a setting an enabled one depends on is refused (both directions)', () => {
  const s = xenSettings()
  const blocked = checkSettingChange(s, 'additional_components.ceilometer.value', false)
  assert.deepEqual(
    blocked.map((b) => [b.dependent, b.message]),
    [['additional_components.mongo', 'Mongo needs Ceilometer']],
  )
  const toKvm = checkSettingChange(s, 'common.libvirt_type.value', 'kvm')
  assert.deepEqual(
    toKvm.map((b) => b.label),
    ['XenServer Plugin'],
  )
  assert.deepEqual(
    checkSettingChange(s, 'additional_components.sahara.value', true).map((b) => b.dependent),
    ['fuel-plugin-xenserver'],
  )
  // allowed when the dependent is off
  s['fuel-plugin-xenserver'].metadata.enabled = false
  assert.deepEqual(checkSettingChange(s, 'common.libvirt_type.value', 'kvm'), [])
})

test('switching off a setting a role in use depends on is refused (checkDependentRoles)', () => {
  const s = xenSettings()
  const roles = {
    mongo: {
      name: 'Telemetry - MongoDB',
      restrictions: [
        {
          condition: 'settings:additional_components.ceilometer.value == false',
          message: 'MongoDB is only needed with Ceilometer.',
        },
      ],
    },
    compute: { name: 'Compute' },
  }
  assert.deepEqual(
    checkSettingChangeForRoles(s, 'additional_components.ceilometer.value', false, roles, ['compute', 'mongo']),
    [
      {
        dependent: 'role:mongo',
        label: 'Telemetry - MongoDB',
        condition: 'settings:additional_components.ceilometer.value == false',
        message: 'MongoDB is only needed with Ceilometer.',
      },
    ],
  )
  assert.deepEqual(
    checkSettingChangeForRoles(s, 'additional_components.ceilometer.value', false, roles, ['compute']),
    [],
  )
})

test('settings validation names the label and never shows a password', () => {
  const s = xenSettings()
  assert.deepEqual(validateSettings(s), [])
  s['fuel-plugin-xenserver'].password.value = ''
  s.common.libvirt_type.value = 'xen'
  const errors = validateSettings(s)
  assert.deepEqual(
    errors.map((e) => e.message),
    [
      'Setting "Hypervisor type" (common.libvirt_type): expected one of qemu, kvm, found "xen"',
      'Setting "Password" (fuel-plugin-xenserver.password): Password cannot be empty',
    ],
  )
  s.common.libvirt_type.value = 'kvm'
  s.additional_components.ceilometer.value = false
  const e2 = validateSettings(s).map((e) => e.message)
  assert.ok(
    e2.includes(
      "Validation failed for attribute 'Use external Mongo' (additional_components.mongo): Mongo needs Ceilometer",
    ),
    e2.join('\n'),
  )
  assert.ok(
    e2.some((m) =>
      m.startsWith("Validation failed for attribute 'XenServer Plugin': restriction with action='disable'"),
    ),
  )
  ;(s['fuel-plugin-xenserver'].password as { value: unknown }).value = 7
  s['fuel-plugin-xenserver'].metadata.restrictions = []
  const e3 = validateSettings(s).map((e) => e.message)
  assert.ok(e3.includes('Setting "Password" (fuel-plugin-xenserver.password): expected a string, found (hidden)'))
  assert.equal(redactSettings(xenSettings())['fuel-plugin-xenserver'].password.value, '********')
})

test('settings validation: number min/max and nullable, list lengths, regex over lists, hidden groups', () => {
  const tree = {
    g: {
      metadata: { label: 'G' },
      n: { type: 'number', label: 'Replicas', value: 0, min: 1, max: 5 },
      m: { type: 'number', label: 'Optional number', value: null, nullable: true },
      o: { type: 'number', label: 'Required number', value: null },
      t: { type: 'text', label: 'Free text', value: null },
      l: {
        type: 'text_list',
        label: 'DNS list',
        value: ['8.8.8.8', 'bad host'],
        min: 1,
        max: 1,
        regex: { source: '^\\S+$', error: 'No spaces' },
      },
    },
    hidden: {
      metadata: { label: 'Hidden', restrictions: [{ condition: 'true', action: 'hide' }] },
      x: { type: 'number', label: 'Never checked', value: 'nan' },
    },
  }
  assert.deepEqual(
    validateSettings(tree).map((e) => e.message),
    [
      'Setting "Replicas" (g.n): must be at least 1, found 0',
      'Setting "Required number" (g.o): expected a number, found null',
      'Setting "DNS list" (g.l): allows at most 1 entries, found 2',
      'Setting "DNS list" (g.l): No spaces',
    ],
  )
  tree.g.n.value = 9
  assert.equal(validateSettings(tree)[0].message, 'Setting "Replicas" (g.n): must be at most 5, found 9')
})

test('the package is browser-safe: no Node imports in its sources', () => {
  const dir = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'src')
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.ts'))) {
    const text = readFileSync(join(dir, f), 'utf8')
    assert.doesNotMatch(text, /from '(node:|fs|path|crypto|os|child_process)/, f)
    assert.doesNotMatch(text, /\b(process|Buffer|require)\s*[.(]/, f)
  }
})
