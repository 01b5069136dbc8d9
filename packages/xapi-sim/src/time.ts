/** XAPI's datetime format: `20250319T04:16:24Z`. */
export function formatXapiDate(d: Date): string {
  const p = (n: number) => (n < 10 ? `0${n}` : String(n))
  return `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}T${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}Z`
}

export function nowXapi(): string {
  return formatXapiDate(new Date())
}
