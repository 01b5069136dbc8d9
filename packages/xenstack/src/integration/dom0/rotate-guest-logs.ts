/**
 * Dom0's guest console-log rotation (bug #1521483): xenconsoled writes each guest's console to
 * /var/log/xen/guest/console.<domid> once `/local/logconsole/@` tells it where, and nothing ever trims those files.
 * The script runs from root's cron every minute: it truncates a log over 1 MiB to its last 5 KiB (and makes
 * xenconsoled reopen it), records each running VM's domid in `other-config:last_dom_id`, and removes logs older than
 * 10 minutes that belong to no known domid. Written for xenstack from the behaviour the reference describes.
 */
export const ROTATE_SCRIPT_PATH = '/root/rotate_xen_guest_logs.sh'
export const GUEST_LOG_DIR = '/var/log/xen/guest'
/** Output goes to /dev/null: cron mail of a per-minute job filled dom0's file system once. */
export const ROTATE_CRON_COMMAND = `${ROTATE_SCRIPT_PATH} >/dev/null 2>&1`

export const ROTATE_SCRIPT = `#!/bin/bash
# Written by xenstack (xenserver.dom0-prepare); rewritten on every deploy, do not edit.
# Keeps the guest console logs in ${GUEST_LOG_DIR} small. Run every minute from root's crontab.
set -u
LOG_DIR=${GUEST_LOG_DIR}
MAX_BYTES=$((1024 * 1024))   # a log above this size ...
KEEP_BYTES=$((5 * 1024))     # ... keeps only its last 5 KiB
STALE_MINUTES=10             # logs of gone domains are removed after this long without writes

log() { logger -t rotate_xen_guest_logs -- "$*"; }

mkdir -p "$LOG_DIR"
# Where xenconsoled writes each domain's console (%d = domid).
xenstore-write /local/logconsole/@ "$LOG_DIR/console.%d"

# Remember the domid of every running VM, so that a log can be matched to a VM after the domain is gone.
known=" "
for vm in $(xe vm-list power-state=running is-control-domain=false params=uuid --minimal | tr ',' ' '); do
  domid=$(xe vm-param-get uuid="$vm" param-name=dom-id 2>/dev/null) || continue
  [ -n "$domid" ] && [ "$domid" != "-1" ] || continue
  xe vm-param-set uuid="$vm" other-config:last_dom_id="$domid" 2>/dev/null
done
for vm in $(xe vm-list is-control-domain=false params=uuid --minimal | tr ',' ' '); do
  domid=$(xe vm-param-get uuid="$vm" param-name=other-config param-key=last_dom_id 2>/dev/null) || continue
  [ -n "$domid" ] && known="$known$domid "
done

for f in "$LOG_DIR"/console.*; do
  [ -f "$f" ] || continue
  domid=\${f##*.}
  case "$known" in
    *" $domid "*) ;;
    *)
      if [ -n "$(find "$f" -mmin +$STALE_MINUTES 2>/dev/null)" ]; then
        rm -f -- "$f" && log "removed $f (no VM had domid $domid)"
      fi
      continue
      ;;
  esac
  size=$(stat -c %s -- "$f" 2>/dev/null || echo 0)
  if [ "$size" -gt "$MAX_BYTES" ]; then
    tail -c "$KEEP_BYTES" -- "$f" > "$f.tmp" && cat -- "$f.tmp" > "$f"
    rm -f -- "$f.tmp"
    # make xenconsoled reopen the (now short) file
    xenstore-write "/local/logconsole/$domid" "$f"
    xenstore-rm "/local/logconsole/$domid"
    log "truncated $f ($size bytes) to its last $KEEP_BYTES bytes"
  fi
done
`
