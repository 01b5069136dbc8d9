/**
 * `xenserver.test-image` (primary controller; xenserver-integration.md §10): TestVM in Glance, replaced the way the
 * original plugin did after LP#1593090 — only images named exactly `TestVM` are touched — with its flaws fixed:
 *
 *  - idempotent: when exactly one TestVM exists, active, with xenstack's TestVM bytes (size, md5 checksum and, when
 *    Glance computed it, the sha512 os_hash_value) and the wanted formats, visibility and vm_mode, nothing changes;
 *    when several exist and one of them is right, that one is kept and the others deleted;
 *  - the new image is created and uploaded (and checked against Glance's checksums) before the old ones are
 *    deleted, so a failed upload never leaves the cloud without a TestVM; a half-made new image is removed;
 *  - the image is xenstack's own (testvm.ts), not a download.
 */
import type { NativeTaskContext } from '../../engine/tasks.js'
import type { ResourceChange } from '../../engine/types.js'
import { GlanceClient, imageDigests, type GlanceImage } from '../../glance/client.js'
import { resolveDataDir } from '../../state/store.js'
import { glanceTargetOf } from './glance-target.js'
import { buildTestVm, type TestVmImage } from './testvm.js'

export const TEST_IMAGE_NAME = 'TestVM'

/** What TestVM must look like in Glance (the original's images.create arguments). */
export const TEST_IMAGE_ATTRIBUTES = {
  container_format: 'ovf',
  disk_format: 'vhd',
  visibility: 'public',
  vm_mode: 'xen',
} as const

export interface TestImagePayload {
  path: string
  size: number
  checksum: string
  osHashValue: string
}

export async function testImagePayload(img: TestVmImage): Promise<TestImagePayload> {
  const d = await imageDigests(img.tgzPath)
  return { path: img.tgzPath, size: d.size, checksum: d.checksum, osHashValue: d.osHashValue }
}

/** Why an existing TestVM is not the wanted one (empty: it is). */
export function testImageDifferences(image: GlanceImage, payload: TestImagePayload): string[] {
  const out: string[] = []
  if (image.status !== 'active') out.push(`status ${image.status}`)
  for (const [k, v] of Object.entries(TEST_IMAGE_ATTRIBUTES))
    if (image[k] !== v) out.push(`${k} ${JSON.stringify(image[k] ?? null)} (want ${v})`)
  if (image.size !== payload.size) out.push(`size ${image.size} (want ${payload.size})`)
  if (image.checksum !== payload.checksum) out.push(`checksum ${image.checksum} (want ${payload.checksum})`)
  if (image.os_hash_algo === 'sha512' && image.os_hash_value !== payload.osHashValue) out.push('os_hash_value differs')
  return out
}

/**
 * What Glance holds under the name TestVM compared with the payload, for checks (health): `problems` is empty
 * exactly when there is one TestVM and it is right; otherwise each entry says what is wrong, with the image id.
 */
export async function testImageStatus(
  glance: GlanceClient,
  payload: TestImagePayload,
): Promise<{ images: GlanceImage[]; problems: string[] }> {
  const images = await glance.listImages({ name: TEST_IMAGE_NAME })
  const problems: string[] = []
  if (images.length === 0) problems.push(`no image named ${TEST_IMAGE_NAME}`)
  if (images.length > 1)
    problems.push(`${images.length} images are named ${TEST_IMAGE_NAME}: ${images.map((i) => i.id).join(', ')}`)
  for (const i of images) {
    const d = testImageDifferences(i, payload)
    if (d.length) problems.push(`${TEST_IMAGE_NAME} ${i.id}: ${d.join(', ')}`)
  }
  return { images, problems }
}

/** Makes Glance hold exactly one TestVM with the payload; returns what it changed. */
export async function replaceTestImage(
  glance: GlanceClient,
  payload: TestImagePayload,
  log: (line: string) => void = () => {},
): Promise<ResourceChange[]> {
  const resource = `glance image ${TEST_IMAGE_NAME}`
  const existing = await glance.listImages({ name: TEST_IMAGE_NAME })
  const keep = existing.find((i) => testImageDifferences(i, payload).length === 0)
  if (keep) {
    // the right TestVM is there: only surplus images named TestVM go
    const changes: ResourceChange[] = []
    for (const old of existing.filter((i) => i.id !== keep.id)) {
      await glance.deleteImage(old.id)
      log(`deleted a surplus ${TEST_IMAGE_NAME} ${old.id} (kept ${keep.id})`)
      changes.push({
        resource: `${resource} ${old.id}`,
        result: 'changed',
        diff: `- ${old.id} checksum ${old.checksum}`,
      })
    }
    if (changes.length === 0) log(`${TEST_IMAGE_NAME} ${keep.id} is up to date (checksum ${payload.checksum})`)
    return changes.length ? changes : [{ resource, result: 'unchanged' }]
  }
  for (const i of existing) log(`${TEST_IMAGE_NAME} ${i.id} differs: ${testImageDifferences(i, payload).join(', ')}`)

  const created = await glance.createImage({ name: TEST_IMAGE_NAME, ...TEST_IMAGE_ATTRIBUTES })
  try {
    const up = await glance.uploadImage(created.id, payload.path, { size: payload.size })
    if (up.checksum !== payload.checksum)
      throw new Error(
        `uploaded ${payload.path} with md5 ${up.checksum}, expected ${payload.checksum}: the file changed`,
      )
  } catch (e) {
    await glance.deleteImage(created.id).catch(() => undefined)
    throw e
  }
  log(`created ${TEST_IMAGE_NAME} ${created.id} (${payload.size} bytes, checksum ${payload.checksum})`)
  const changes: ResourceChange[] = [
    { resource, result: 'changed', diff: `+ ${created.id} checksum ${payload.checksum}` },
  ]
  for (const old of existing) {
    await glance.deleteImage(old.id)
    log(`deleted the previous ${TEST_IMAGE_NAME} ${old.id}`)
    changes.push({ resource: `${resource} ${old.id}`, result: 'changed', diff: `- ${old.id} checksum ${old.checksum}` })
  }
  return changes
}

/** The native task. The TestVM build is cached in xenstack's data directory. */
export async function runTestImage(ctx: NativeTaskContext): Promise<ResourceChange[]> {
  const target = await glanceTargetOf(ctx)
  const glance = new GlanceClient(target.options)
  ctx.log(`Glance from ${target.source}: ${await glance.endpoint()}`)
  const img = await buildTestVm(resolveDataDir())
  ctx.log(`${img.built ? 'built' : 'cached'} TestVM image ${img.tgzPath}`)
  return replaceTestImage(glance, await testImagePayload(img), ctx.log)
}
