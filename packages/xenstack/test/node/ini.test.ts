import { test } from 'node:test'
import assert from 'node:assert/strict'
import { iniGet, iniRemove, iniSet, iniSections } from '../../src/node/index.js'

const NOVA = `# nova-compute.conf written by the distribution
[DEFAULT]
# The driver
compute_driver = libvirt.LibvirtDriver
debug=True

[vnc]
enabled = True

[xenserver]
#connection_url = <None>
#connection_username = root
other = keep ; not a comment for oslo
`

test('ini: set changes only the value, keeps comments, order, spacing and unrelated keys', () => {
  const out = iniSet(NOVA, 'DEFAULT', 'compute_driver', 'xenapi.XenAPIDriver')
  assert.equal(out, NOVA.replace('compute_driver = libvirt.LibvirtDriver', 'compute_driver = xenapi.XenAPIDriver'))
  const out2 = iniSet(NOVA, 'DEFAULT', 'debug', 'False')
  assert.equal(out2, NOVA.replace('debug=True', 'debug=False'), 'the key=value style is kept')
  assert.equal(
    iniSet(out, 'DEFAULT', 'compute_driver', 'xenapi.XenAPIDriver'),
    out,
    'setting the same value changes nothing',
  )
})

test('ini: a new key goes after its commented-out default, else after the last key of the section', () => {
  const out = iniSet(NOVA, 'xenserver', 'connection_url', 'http://169.254.0.1')
  assert.match(out, /#connection_url = <None>\nconnection_url = http:\/\/169\.254\.0\.1\n#connection_username/)
  const out2 = iniSet(NOVA, 'vnc', 'novncproxy_base_url', 'http://1.2.3.4:6080/vnc_auto.html')
  assert.match(
    out2,
    /\[vnc\]\nenabled = True\nnovncproxy_base_url = http:\/\/1\.2\.3\.4:6080\/vnc_auto\.html\n\n\[xenserver\]/,
  )
  assert.equal(iniGet(out2, 'vnc', 'novncproxy_base_url'), 'http://1.2.3.4:6080/vnc_auto.html')
})

test('ini: a missing section is appended; a missing DEFAULT goes first', () => {
  const out = iniSet(NOVA, 'cache', 'enabled', 'true')
  assert.ok(out.startsWith(NOVA))
  assert.ok(out.endsWith('\n[cache]\nenabled = true\n'))
  const noDefault = '# top comment\n[vnc]\nenabled = True\n'
  assert.equal(
    iniSet(noDefault, 'DEFAULT', 'force_config_drive', 'True'),
    '# top comment\n[DEFAULT]\nforce_config_drive = True\n\n[vnc]\nenabled = True\n',
  )
  assert.equal(iniSet('', 'xenserver', 'a', 'b'), '[xenserver]\na = b\n')
  assert.deepEqual(iniSections(iniSet(noDefault, 'DEFAULT', 'x', 'y')), ['DEFAULT', 'vnc'])
})

test('ini: duplicate sections — the last value wins; set writes the last and drops earlier duplicates', () => {
  const dup = '[DEFAULT]\na = 1\nb = 2\n[x]\nk = v\n[DEFAULT]\n# again\na = 3\n'
  assert.equal(iniGet(dup, 'DEFAULT', 'a'), '3')
  assert.equal(iniSet(dup, 'DEFAULT', 'a', '4'), '[DEFAULT]\nb = 2\n[x]\nk = v\n[DEFAULT]\n# again\na = 4\n')
  assert.equal(
    iniSet(dup, 'DEFAULT', 'c', '5'),
    '[DEFAULT]\na = 1\nb = 2\n[x]\nk = v\n[DEFAULT]\n# again\na = 3\nc = 5\n',
  )
  assert.equal(iniGet(dup, 'x', 'a'), undefined, 'sections are separate')
})

test('ini: remove deletes every occurrence (with continuation lines) and nothing else', () => {
  const text = '[a]\nk = 1\n  continued\nj = 2\n[a]\nk = 3\n'
  assert.equal(iniGet(text, 'a', 'k'), '3')
  assert.equal(iniGet(text.slice(0, 29), 'a', 'k'), '1\ncontinued')
  assert.equal(iniRemove(text, 'a', 'k'), '[a]\nj = 2\n[a]\n')
  assert.equal(iniRemove(text, 'a', 'missing'), text)
  assert.throws(() => iniSet(text, 'a', 'k', 'two\nlines'), /\[a\] k: multi-line values are not supported/)
})
