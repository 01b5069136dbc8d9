/** Markup several pages show alike, written once so it stays alike: table headings, the error alert, a pool's VMs. */

/** A table's headings, one per label; `actions` adds a last column for row buttons, named for screen readers only. */
export function ColumnHeads({ labels, actions = false }: { labels: readonly string[]; actions?: boolean }) {
  return (
    <thead>
      <tr>
        {labels.map((label) => (
          <th scope="col" key={label}>
            {label}
          </th>
        ))}
        {actions && (
          <th scope="col">
            <span className="sr-only">Actions</span>
          </th>
        )}
      </tr>
    </thead>
  )
}

/** An error, announced at once (role="alert"); nothing while there is none. */
export function ErrorAlert({ error }: { error: string | undefined }) {
  if (!error) return null
  return (
    <p role="alert" className="error">
      {error}
    </p>
  )
}

/** A VM as a pool's inventory reports it (GET /pools). */
export interface PoolVm {
  uuid: string
  name: string
  powerState: string
  host?: string
}

/** A pool's VMs as list items: name, power state and the host it runs on. */
export function PoolVmItems({ vms }: { vms: readonly PoolVm[] | undefined }) {
  return (
    <>
      {vms?.map((v) => (
        <li key={v.uuid}>
          {v.name} — {v.powerState}
          {v.host ? ` on ${v.host}` : ''}
        </li>
      ))}
    </>
  )
}
