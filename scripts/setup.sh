#!/usr/bin/env bash
# Installs, idempotently and only when missing, the Debian packages that xenstack's
# real-component tests need, then the npm dependencies (npm ci).
# Runs `apt-get update` at most once, and only when something must be installed.
set -euo pipefail

cd "$(dirname "$0")/.."

# Debian package -> why the tests need it.
PACKAGES=(
  openssh-server     # a real sshd per lab host
  openssh-client     # ssh-keygen, ssh for lab access
  iproute2           # ip netns / links / routes
  iptables           # NAT, FORWARD and INPUT rules in the lab
  dnsmasq-base       # DHCP on the host internal management network
  isc-dhcp-client    # dhclient in lab guests: their HIMN address by DHCP from dom0, as on XenServer
  ifupdown           # ifup/ifdown in lab guests: the HIMN interface persisted the Debian way
  python3-os-xenapi  # os-xenapi's Python client: an independent conformance client
  qemu-utils         # qemu-img: an independent VHD producer and checker
  chromium           # real browser for UI tests (driven by playwright-core)
  util-linux         # unshare, nsenter, mount
  procps             # sysctl, ps
  cron               # crontab in lab hosts
  python3-glance     # a real Glance v2 image API on the lab controller
  postgresql         # the second state-store backend
  curl               # HTTP checks inside lab hosts
  xxd                # hexdumps in tests
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: these Debian packages are missing and installing them needs root: ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Services must not start on install: tests start their own instances in namespaces.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "setup: installed ${missing[*]}"
else
  echo "setup: all ${#PACKAGES[@]} Debian packages already installed"
fi

npm ci --no-audit --no-fund
