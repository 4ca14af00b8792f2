#!/bin/bash
# Installs everything cnibox needs on a Debian machine with Node/npm, as root:
# Debian's iproute2, iptables, nftables, conntrack, the reference plugins
# (containernetworking-plugins, for side-by-side tests), hyperfine, strace and
# time (benchmarks), curl, chromium and podman (end-to-end tests), and Deno 2.9
# from the npm registry into /opt/cnibox-deno with /usr/local/bin/deno pointing
# at it.
# Safe to run again: it installs only what is missing.
set -euo pipefail

DENO_VERSION="${DENO_VERSION:-2.9.6}"
packages=(iproute2 iptables nftables conntrack containernetworking-plugins hyperfine curl chromium strace time)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! deno --version 2>/dev/null | grep -q "^deno ${DENO_VERSION} "; then
  echo "setup: installing deno@${DENO_VERSION} from npm into /opt/cnibox-deno"
  mkdir -p /opt/cnibox-deno
  npm install --silent --no-audit --no-fund --prefix /opt/cnibox-deno "deno@${DENO_VERSION}"
  bin=/opt/cnibox-deno/node_modules/deno/deno
  # The npm package normally places the binary itself; fall back to the platform package.
  [ -x "$bin" ] || bin=/opt/cnibox-deno/node_modules/@deno/linux-x64-glibc/deno
  ln -sf "$bin" /usr/local/bin/deno
fi
deno --version | head -1

# podman with the CNI backend for the end-to-end tests: runc explicitly (crun refuses this
# kind of machine's cgroup setup) and a static busybox to import as an image, no registry.
podman_packages=(podman runc busybox-static catatonit)
podman_missing=()
for p in "${podman_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || podman_missing+=("$p")
done
if ((${#podman_missing[@]})); then
  echo "setup: installing Debian packages: ${podman_missing[*]}"
  [ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -print -quit)" ] || apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${podman_missing[@]}" >/dev/null
fi

# playwright-core drives Debian's chromium in the dashboard's browser test; kept outside the
# project so no package.json sits beside deno.json.
if [ ! -d /opt/cnibox-browser/node_modules/playwright-core ]; then
  echo "setup: installing playwright-core from npm into /opt/cnibox-browser"
  mkdir -p /opt/cnibox-browser
  npm install --silent --no-audit --no-fund --prefix /opt/cnibox-browser playwright-core
fi

# Fetch npm dependencies (hono) once, as recorded in deno.lock.
deno install --quiet --frozen 2>/dev/null || deno install --quiet
