/** Glance v2 images API client with Keystone v3 password auth, and a keystone-less Glance server for labs/tests. */
export {
  GlanceClient,
  ImageHasher,
  imageDigests,
  GLANCE_HASH_ALGO,
  type GlanceImage,
  type CreateImage,
  type ListFilters,
  type UploadResult,
  type GlanceClientOptions,
} from './client.js'
export {
  authenticate,
  endpointFromCatalog,
  tokensUrl,
  KeystoneSession,
  type KeystoneCredentials,
  type KeystoneToken,
  type CatalogEntry,
  type EndpointInterface,
} from './keystone.js'
export { OpenStackHttpError, serviceMessageOf, type TlsOptions } from './http.js'
export { startStandaloneGlance, type StandaloneGlance } from './standalone.js'
export { glanceInstalled, GLANCE_PYTHON, GLANCE_DEFAULT_PORT } from './server-config.js'
