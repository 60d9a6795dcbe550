#!/usr/bin/env bash
# Installs everything this repository needs on a fresh Debian machine (run as root, or with sudo
# available), then installs the workspace and builds it.
#   bash tooling/bootstrap.sh          what `pnpm start` needs
#   bash tooling/bootstrap.sh --test   also the Debian packages the test suite uses as real peers
set -euo pipefail
cd "$(dirname "$0")/.."

want_test_deps=0
for arg in "$@"; do
  case "$arg" in
    --test) want_test_deps=1 ;;
    *) echo "bootstrap: unknown option $arg (known: --test)" >&2; exit 2 ;;
  esac
done

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages: compilers for the vsock addon, and the real peers the tests use.
apt_packages=(python3 make g++)
if [ "$want_test_deps" = 1 ]; then
  apt_packages+=(socat iptables iproute2 openssl curl cpio busybox-static qemu-system-x86 docker.io)
fi
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The QEMU tests fetch Debian's kernel with `apt-get download`: that needs apt's package lists.
if [ "$want_test_deps" = 1 ] && ! apt-cache depends linux-image-amd64 >/dev/null 2>&1; then
  as_root apt-get update -qq
fi

# pnpm, at the version package.json pins.
pnpm_version=$(node -p "require('./package.json').packageManager.split('@')[1]")
if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version 2>/dev/null)" != "$pnpm_version" ]; then
  echo "bootstrap: installing pnpm $pnpm_version"
  as_root npm install -g --silent "pnpm@$pnpm_version"
fi

# pnpm's bundled node-gyp ignores nodedir from .npmrc: without this it downloads headers.
node_prefix=$(node -p "require('node:path').resolve(process.execPath, '../..')")
if [ -f "$node_prefix/include/node/node_api.h" ]; then
  export npm_config_nodedir="$node_prefix"
else
  export npm_config_nodedir=/usr
fi
export TURBO_TELEMETRY_DISABLED=1
pnpm install --frozen-lockfile --reporter=append-only
pnpm build
