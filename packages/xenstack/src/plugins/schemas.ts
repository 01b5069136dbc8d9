/**
 * JSON Schemas of Fuel plugin files, per package_version (1.0.0–6.0.0), after fuel-plugin-builder's validators
 * and nailgun's attribute schema. Checks that need labels or positions of several values at once (setting value
 * types, restriction expressions, task parameters per type, graph references) are done in code next to these
 * schemas (validate.ts, graph.ts), so the schemas stay readable.
 */
export const PACKAGE_VERSIONS = ['1.0.0', '2.0.0', '3.0.0', '4.0.0', '5.0.0', '6.0.0'] as const
export type PackageVersion = (typeof PACKAGE_VERSIONS)[number]

/** Minimum Fuel version (`basic_version`) of each package_version. */
export const MIN_FUEL_VERSION: Record<PackageVersion, string> = {
  '1.0.0': '6.0',
  '2.0.0': '6.1',
  '3.0.0': '7.0',
  '4.0.0': '8.0',
  '5.0.0': '9.0',
  '6.0.0': '9.0',
}

export type PluginFileName =
  | 'metadata.yaml'
  | 'environment_config.yaml'
  | 'tasks.yaml'
  | 'deployment_tasks.yaml'
  | 'components.yaml'
  | 'node_roles.yaml'
  | 'volumes.yaml'
  | 'network_roles.yaml'
  | 'node_config.yaml'
  | 'nic_config.yaml'
  | 'bond_config.yaml'
  | 'node_tags.yaml'

/** The package_version that introduced each file, and from which version on it is required (if ever). */
export const FILES: Record<
  PluginFileName,
  { since: PackageVersion; requiredFrom?: PackageVersion; requiredUntil?: PackageVersion }
> = {
  'metadata.yaml': { since: '1.0.0', requiredFrom: '1.0.0' },
  'environment_config.yaml': { since: '1.0.0', requiredFrom: '1.0.0', requiredUntil: '2.0.0' },
  'tasks.yaml': { since: '1.0.0', requiredFrom: '1.0.0', requiredUntil: '2.0.0' },
  'deployment_tasks.yaml': { since: '3.0.0', requiredFrom: '3.0.0', requiredUntil: '4.0.0' },
  'network_roles.yaml': { since: '3.0.0' },
  'node_roles.yaml': { since: '3.0.0' },
  'volumes.yaml': { since: '3.0.0' },
  'components.yaml': { since: '4.0.0' },
  'node_config.yaml': { since: '5.0.0' },
  'nic_config.yaml': { since: '5.0.0' },
  'bond_config.yaml': { since: '5.0.0' },
  'node_tags.yaml': { since: '6.0.0' },
}

export const compareVersions = (a: string, b: string): number => {
  const pa = a.split('.').map((x) => parseInt(x, 10) || 0)
  const pb = b.split('.').map((x) => parseInt(x, 10) || 0)
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0)
    if (d !== 0) return d
  }
  return 0
}

const atLeast = (v: PackageVersion, min: PackageVersion) => compareVersions(v, min) >= 0

type Schema = Record<string, unknown>

const str: Schema = { type: 'string' }
const strList: Schema = { type: 'array', items: str }
const roleSpec: Schema = { type: ['string', 'array'], items: str }

/** Stages of legacy tasks.yaml: pre_deployment or post_deployment, with an optional /<number> postfix. */
export const LEGACY_STAGE = /^(pre_deployment|post_deployment)(\/[-+]?\d+(\.\d+)?)?$/

export const TASK_TYPES_V3 = [
  'puppet',
  'shell',
  'group',
  'skipped',
  'copy_files',
  'sync',
  'upload_file',
  'stage',
  'reboot',
  // xenstack's own: a task written in TypeScript, found by parameters.handler in the engine's native registry.
  'native',
]
export const LEGACY_TASK_TYPES = (v: PackageVersion) =>
  atLeast(v, '2.0.0') ? ['puppet', 'shell', 'reboot'] : ['puppet', 'shell']
export const GROUPS = (v: PackageVersion) => [
  'network',
  'storage',
  'storage::cinder',
  'storage::glance',
  'hypervisor',
  'monitoring',
  ...(atLeast(v, '4.0.0') ? ['equipment'] : []),
]
export const SETTINGS_GROUPS = [
  'general',
  'security',
  'compute',
  'network',
  'storage',
  'logging',
  'openstack_services',
  'other',
]

export function metadataSchema(v: PackageVersion): Schema {
  const required = ['name', 'title', 'version', 'package_version', 'description', 'fuel_version', 'releases']
  if (atLeast(v, '2.0.0')) required.push('licenses', 'authors', 'homepage', 'groups')
  if (atLeast(v, '4.0.0')) required.push('is_hotpluggable')
  return {
    type: 'object',
    required,
    properties: {
      name: { type: 'string', pattern: '^[a-z0-9_-]+$' },
      title: str,
      description: str,
      version: { type: 'string', pattern: '^\\d+\\.\\d+(\\.\\d+)?([ab]\\d+)?$' },
      package_version: { enum: [v] },
      fuel_version: { type: 'array', items: str, minItems: 1 },
      licenses: strList,
      authors: strList,
      homepage: str,
      groups: { type: 'array', uniqueItems: true, items: { enum: GROUPS(v) } },
      is_hotpluggable: { type: 'boolean' },
      build_version: { type: ['string', 'number'] },
      releases: {
        type: 'array',
        minItems: 1,
        items: {
          type: 'object',
          required: ['os', 'version', 'mode', 'deployment_scripts_path', 'repository_path'],
          properties: {
            os: { enum: ['ubuntu', 'centos'] },
            version: str,
            mode: { type: 'array', items: { enum: ['ha', 'multinode'] } },
            deployment_scripts_path: str,
            repository_path: str,
          },
        },
      },
    },
  }
}

const restrictionsSchema: Schema = { type: 'array' }

const settingSchema: Schema = {
  type: 'object',
  required: ['type', 'label', 'weight', 'value'],
  properties: {
    type: { type: 'string' },
    label: str,
    description: str,
    weight: { type: 'number' },
    restrictions: restrictionsSchema,
    regex: { type: 'object', required: ['source'], properties: { source: str, error: str } },
    values: {
      type: 'array',
      items: {
        type: 'object',
        required: ['data', 'label'],
        properties: { data: {}, label: str, description: str, restrictions: restrictionsSchema },
      },
    },
    min: { type: 'number' },
    max: { type: 'number' },
    nullable: { type: 'boolean' },
  },
}

export function environmentConfigSchema(v: PackageVersion): Schema {
  return {
    type: 'object',
    required: ['attributes'],
    properties: {
      attributes: {
        type: 'object',
        properties: {
          metadata: {
            type: 'object',
            properties: {
              label: str,
              weight: { type: 'number' },
              toggleable: { type: 'boolean' },
              enabled: { type: 'boolean' },
              restrictions: restrictionsSchema,
              ...(atLeast(v, '4.0.0') ? { group: { enum: SETTINGS_GROUPS } } : {}),
            },
          },
        },
        additionalProperties: settingSchema,
      },
    },
  }
}

export function legacyTasksSchema(v: PackageVersion): Schema {
  return {
    type: 'array',
    items: {
      type: 'object',
      required: ['role', 'stage', 'type', 'parameters'],
      properties: {
        role: roleSpec,
        // The stage's value is checked in loader.ts (legacyTaskIssues) with a clearer message.
        stage: { type: 'string' },
        type: { enum: LEGACY_TASK_TYPES(v) },
        parameters: { type: 'object', required: ['timeout'], properties: { timeout: { type: 'number' } } },
      },
    },
  }
}

const crossDeps: Schema = {
  type: ['array', 'object'],
  items: {
    type: 'object',
    properties: { name: str, role: roleSpec, policy: { enum: ['all', 'any'] } },
  },
}

export function deploymentTasksSchema(v: PackageVersion): Schema {
  const v4 = atLeast(v, '4.0.0')
  return {
    type: 'array',
    items: {
      type: 'object',
      required: ['id', 'type'],
      properties: {
        id: { type: 'string', pattern: v4 ? '^[0-9a-zA-Z_*-]+$' : '^[0-9a-zA-Z_-]+$' },
        type: { enum: TASK_TYPES_V3 },
        role: roleSpec,
        roles: roleSpec,
        groups: roleSpec,
        tags: roleSpec,
        requires: strList,
        required_for: strList,
        tasks: strList,
        stage: str,
        condition: { type: ['string', 'object'] },
        parameters: { type: 'object' },
        reexecute_on: { type: 'array', items: { enum: ['deploy_changes'] } },
        fault_tolerance: { type: ['integer', 'string'] },
        ...(v4
          ? {
              version: { type: 'string', pattern: '^\\d+\\.\\d+\\.\\d+$' },
              'cross-depends': crossDeps,
              'cross-depended-by': crossDeps,
            }
          : {}),
      },
    },
  }
}

const componentRefs: Schema = {
  type: 'array',
  items: { type: 'object', required: ['name'], properties: { name: str, message: str, description: str } },
}

export const COMPONENT_NAME_PATTERN = '^(hypervisor|network|storage|additional_service):([0-9a-z_-]+:)*[0-9a-z_-]+$'

export function componentsSchema(): Schema {
  return {
    type: 'array',
    items: {
      type: 'object',
      required: ['name', 'label'],
      additionalProperties: false,
      properties: {
        name: { type: 'string', pattern: COMPONENT_NAME_PATTERN },
        label: str,
        description: str,
        compatible: componentRefs,
        incompatible: componentRefs,
        requires: { type: 'array' },
        bind: { type: 'array' },
      },
    },
  }
}

export function nodeRolesSchema(): Schema {
  return {
    type: 'object',
    additionalProperties: {
      type: 'object',
      required: ['name', 'description'],
      properties: {
        name: str,
        description: str,
        conflicts: { type: ['array', 'string'] },
        has_primary: { type: 'boolean' },
        public_ip_required: { type: 'boolean' },
        update_required: strList,
        update_once: strList,
        weight: { type: 'number' },
        restrictions: restrictionsSchema,
        limits: {
          type: 'object',
          properties: {
            min: { type: ['integer', 'string'] },
            max: { type: ['integer', 'string'] },
            recommended: { type: ['integer', 'string'] },
            condition: str,
            overrides: { type: 'array', items: { type: 'object', properties: { condition: str, message: str } } },
          },
        },
      },
    },
  }
}

export function volumesSchema(): Schema {
  return {
    type: 'object',
    required: ['volumes', 'volumes_roles_mapping'],
    properties: {
      volumes: { type: 'array', items: { type: 'object', required: ['id', 'type'] } },
      volumes_roles_mapping: {
        type: 'object',
        additionalProperties: {
          type: 'array',
          items: {
            type: 'object',
            required: ['id', 'allocate_size'],
            properties: { id: str, allocate_size: { enum: ['all', 'min', 'full-disk'] } },
          },
        },
      },
    },
  }
}

export function networkRolesSchema(): Schema {
  return {
    type: 'array',
    items: {
      type: 'object',
      required: ['id', 'default_mapping', 'properties'],
      properties: {
        id: str,
        default_mapping: str,
        properties: {
          type: 'object',
          required: ['subnet', 'gateway', 'vip'],
          properties: {
            subnet: { type: 'boolean' },
            gateway: { type: 'boolean' },
            vip: {
              type: 'array',
              items: {
                type: 'object',
                required: ['name'],
                properties: { name: str, namespace: { type: ['string', 'boolean'] }, alias: str, node_roles: strList },
              },
            },
          },
        },
      },
    },
  }
}

const nodeAttribute: Schema = {
  type: 'object',
  required: ['type', 'label', 'value'],
  properties: { type: str, label: str, description: str, restrictions: restrictionsSchema },
}

export function nodeConfigSchema(): Schema {
  return {
    type: 'object',
    additionalProperties: {
      type: 'object',
      properties: {
        metadata: { type: 'object', properties: { label: str, group: str, restrictions: restrictionsSchema } },
      },
      additionalProperties: nodeAttribute,
    },
  }
}

export function interfaceConfigSchema(): Schema {
  return { type: 'object', additionalProperties: nodeAttribute }
}

export function nodeTagsSchema(): Schema {
  return {
    type: 'object',
    additionalProperties: { type: 'object', properties: { has_primary: { type: 'boolean' } } },
  }
}

export function schemaFor(file: PluginFileName, v: PackageVersion): Schema {
  switch (file) {
    case 'metadata.yaml':
      return metadataSchema(v)
    case 'environment_config.yaml':
      return environmentConfigSchema(v)
    case 'tasks.yaml':
      return legacyTasksSchema(v)
    case 'deployment_tasks.yaml':
      return deploymentTasksSchema(v)
    case 'components.yaml':
      return componentsSchema()
    case 'node_roles.yaml':
      return nodeRolesSchema()
    case 'volumes.yaml':
      return volumesSchema()
    case 'network_roles.yaml':
      return networkRolesSchema()
    case 'node_config.yaml':
      return nodeConfigSchema()
    case 'nic_config.yaml':
    case 'bond_config.yaml':
      return interfaceConfigSchema()
    case 'node_tags.yaml':
      return nodeTagsSchema()
  }
}
