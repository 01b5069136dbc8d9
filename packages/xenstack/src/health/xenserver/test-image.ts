/**
 * TestVM in Glance: Fuel's own health checks boot `TestVM`, which on XenServer must be a VHD in an OVF container
 * with `vm_mode=xen` (the XenServer plugin replaced it, §10/§13). Exactly one image of that name, with the formats
 * and properties the image task writes (TEST_IMAGE_ATTRIBUTES), active, and its data intact: downloaded and hashed,
 * the bytes match the checksum (md5) and size Glance recorded, and sha512 when Glance computed one.
 */
import { createHash } from 'node:crypto'
import { GlanceClient, type GlanceImage } from '../../glance/client.js'
import { glanceTargetOf } from '../../integration/image/glance-target.js'
import { TEST_IMAGE_ATTRIBUTES, TEST_IMAGE_NAME } from '../../integration/image/test-image.js'
import type { HealthTest } from '../types.js'
import type { XenServerHealthEnv } from './environment.js'

const summary = (i: GlanceImage) => ({
  id: i.id,
  status: i.status,
  container_format: i.container_format,
  disk_format: i.disk_format,
  visibility: i.visibility,
  vm_mode: i.vm_mode,
  size: i.size,
  checksum: i.checksum,
})

export const testVmImage: HealthTest<XenServerHealthEnv> = {
  id: 'xenstack.health.xenserver.sanity.test_testvm_image',
  testset: 'sanity',
  title: 'The TestVM image is in Glance once, as a Xen VHD, with intact data',
  description:
    'Instance tests boot TestVM; on XenServer it must be a VHD (container ovf, disk vhd) with vm_mode=xen. Two ' +
    'images of that name make tests pick either; a corrupted upload fails only when nova downloads it.',
  steps: [
    'Find Glance from the primary controller.',
    `List the images named ${TEST_IMAGE_NAME} and expect exactly one.`,
    `Check its status, formats, visibility and vm_mode.`,
    'Download its data and compare size and checksums with what Glance recorded.',
  ],
  duration: '3 s',
  deploymentTags: 'xenserver',
  async run(ctx) {
    const env = ctx.env
    const primary = env.nodes.find((n) => n.roles.includes('primary-controller')) ?? env.controllers[0]
    if (!primary) ctx.skip('the environment has no controller, so no Glance to ask')
    const glance = await ctx.step(1, async () => {
      const target = await glanceTargetOf(await env.nativeContext(primary!.name))
      const client = new GlanceClient(target.options)
      ctx.evidence('Glance', { from: target.source, endpoint: await client.endpoint() })
      return client
    })
    const image = await ctx.step(2, async () => {
      const found = await glance.listImages({ name: TEST_IMAGE_NAME })
      if (found.length !== 1)
        ctx.fail(
          `exactly one image named ${TEST_IMAGE_NAME}`,
          found.length === 0
            ? `none (Glance has no ${TEST_IMAGE_NAME}; the xenserver.test-image task uploads it)`
            : `${found.length}: ${found.map((i) => i.id).join(', ')}`,
          [{ label: `images named ${TEST_IMAGE_NAME}`, value: found.map(summary) }],
        )
      return found[0]!
    })
    await ctx.step(3, () => {
      const wrong: string[] = []
      if (image.status !== 'active') wrong.push(`status ${image.status}`)
      for (const [k, v] of Object.entries(TEST_IMAGE_ATTRIBUTES))
        if (image[k] !== v) wrong.push(`${k} ${JSON.stringify(image[k] ?? null)} (expected ${v})`)
      if (wrong.length)
        ctx.fail(
          `${TEST_IMAGE_NAME} active with ${Object.entries(TEST_IMAGE_ATTRIBUTES)
            .map(([k, v]) => `${k}=${v}`)
            .join(', ')}`,
          `image ${image.id}: ${wrong.join(', ')}`,
          [{ label: `image ${image.id}`, value: summary(image) }],
        )
    })
    await ctx.step(4, async () => {
      const md5 = createHash('md5')
      const sha512 = createHash('sha512')
      let size = 0
      for await (const chunk of await glance.downloadImage(image.id)) {
        const b = chunk as Buffer
        size += b.length
        md5.update(b)
        sha512.update(b)
      }
      const got = { size, checksum: md5.digest('hex'), sha512: sha512.digest('hex') }
      const wrong: string[] = []
      if (image.size !== null && image.size !== got.size) wrong.push(`${got.size} bytes (recorded ${image.size})`)
      if (image.checksum && image.checksum !== got.checksum)
        wrong.push(`md5 ${got.checksum} (recorded ${image.checksum})`)
      if (image.os_hash_algo === 'sha512' && image.os_hash_value && image.os_hash_value !== got.sha512)
        wrong.push('sha512 differs from the recorded os_hash_value')
      ctx.evidence(`image ${image.id} data`, { size: got.size, md5: got.checksum })
      if (wrong.length)
        ctx.fail(`the data of ${TEST_IMAGE_NAME} ${image.id} to match Glance's checksums`, wrong.join(', '))
    })
  },
}
