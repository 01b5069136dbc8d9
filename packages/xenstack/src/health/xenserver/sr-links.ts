/** /boot/guest and /images into the SR the integration chose for the host (dom0 preparation's own resources). */
import { srLinks } from '../../integration/dom0/prepare.js'
import { srForHost } from '../../integration/dom0/sr.js'
import { dom0StateTest } from './configuration.js'
import { computeHosts } from './sanity.js'

export const dom0SrLinks = dom0StateTest({
  id: 'xenstack.health.xenserver.configuration.test_dom0_sr_links',
  title: '/boot/guest and /images point into the local SR',
  description:
    'Kernels and ramdisks (/boot/guest) and resize/migration staging (/images) live on the SR, so they cannot fill ' +
    'dom0’s root file system.',
  step: 'Check both links on every dom0 against the mount of the file-based SR the integration chose for its host.',
  expected: '/boot/guest and /images linked into the SR mount (/var/run/sr-mount/<SR uuid>/) on every dom0',
  resources: async (env, n, dom0) => {
    const host = (await computeHosts({ ...env, computes: [n] }))[0]!
    const sr = await srForHost(env.xapi(n.name), host.ref, host.name)
    return srLinks(dom0, { srUuid: sr.uuid })
  },
})
