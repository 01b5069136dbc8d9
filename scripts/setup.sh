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
  python3-keystone   # a real Keystone v3 for the Glance client's password auth and catalog tests
  postgresql         # the second state-store backend
  libpq-dev          # headers + pg_config: the state store's PostgreSQL driver (npm libpq) is built from source
  curl               # HTTP checks inside lab hosts
  iputils-ping       # ping: health checks send real packets from dom0 through the compute VM's NAT
  xxd                # hexdumps in tests
  openssl            # self-signed certificates for the TLS tests (xenapi client, CLI --ca/--fingerprint)
  bsdutils           # script: the CLI's terminal tests (no-echo password prompt, progress bars) on a pty
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

# PostgreSQL for the state store's second backend: the distribution's cluster started (no systemd here: pg_ctlcluster)
# and a role + database the tests create their own databases with (test/state/databases.ts).
start_postgres() {
  local ver
  ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
  if ! pg_lsclusters -h | awk -v v="$ver" '$1 == v && $2 == "main"' | grep -q .; then
    pg_createcluster "$ver" main >/dev/null
  fi
  if ! pg_lsclusters -h | awk -v v="$ver" '$1 == v && $2 == "main" && $4 == "online"' | grep -q .; then
    pg_ctlcluster "$ver" main start
  fi
  runuser -u postgres -- psql -qAt -v ON_ERROR_STOP=1 -c "DO \$\$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'xenstack') THEN
        CREATE ROLE xenstack LOGIN CREATEDB PASSWORD 'xenstack';
      END IF; END \$\$;"
  if ! runuser -u postgres -- psql -qAt -c "SELECT 1 FROM pg_database WHERE datname = 'xenstack'" | grep -q 1; then
    runuser -u postgres -- createdb -O xenstack xenstack
  fi
  echo "setup: PostgreSQL $ver running (role and database xenstack)"
}
if [[ $(id -u) -eq 0 ]]; then
  start_postgres
else
  echo "setup: not root: PostgreSQL not started (the state store's PostgreSQL tests skip outside CI)" >&2
fi

npm ci --no-audit --no-fund
