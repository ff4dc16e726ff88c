#!/usr/bin/env bash
# Installs the real components IPsatoshi builds against and tests with.
# Idempotent: every step checks first, so a second run takes seconds.
# Nothing here runs at test time; tests only use what this script put in place.
set -euo pipefail

COMETBFT_VERSION="v0.38.26"
GOBIN="${GOBIN:-$(go env GOPATH)/bin}"
export GOBIN

log() { printf '[install-deps] %s\n' "$*" >&2; }

# The module version baked into a `go install`ed binary. Tools' own version strings cannot be
# trusted: btcctl v0.24.2 reports "0.23.1-beta", abci-cli reports the ABCI version.
go_bin_module_version() { # <binary>: prints the main module version it was built from
  go version -m "$1" 2>/dev/null | awk '$1 == "mod" { print $3; exit }'
}

# libclang for RocksDB's bindings; podman, its compose and networking, and debootstrap for the
# container devnet (devnet/docker-compose.yml); Chromium, which renders the explorer in its test.
apt_packages=(libclang-dev clang podman podman-compose runc netavark aardvark-dns iptables
  containernetworking-plugins debootstrap chromium)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! "$GOBIN/cometbft" version 2>/dev/null | grep -qx "${COMETBFT_VERSION#v}"; then
  log "installing cometbft ${COMETBFT_VERSION} into $GOBIN"
  go install "github.com/cometbft/cometbft/cmd/cometbft@${COMETBFT_VERSION}"
fi

log "cometbft $("$GOBIN/cometbft" version) at $GOBIN/cometbft"

# abci-cli serves CometBFT's own kvstore example over the ABCI socket; scripts/bench uses it as
# the baseline an out-of-process application is measured against. Same module, same version.
if [ "$(go_bin_module_version "$GOBIN/abci-cli")" != "$COMETBFT_VERSION" ]; then
  log "installing abci-cli ${COMETBFT_VERSION} into $GOBIN"
  go install "github.com/cometbft/cometbft/abci/cmd/abci-cli@${COMETBFT_VERSION}"
fi

# --- RSK stand-in (anvil) and the Solidity compiler (solcjs), from npm ---------------------
# Both go into a prefix outside the clone; $TOOLS/bin holds stable entry points
# (`anvil`, `solcjs`) that scripts/env.sh puts on PATH.
SOLC_VERSION="0.8.37"
ANVIL_NPM_PACKAGE="@foundry-rs/anvil-linux-amd64"
ANVIL_VERSION="1.7.1"
TOOLS="${IPSAT_TOOLS:-$HOME/.cache/ipsat/tools}"
NPM_PREFIX="$TOOLS/npm"
mkdir -p "$TOOLS/bin" "$NPM_PREFIX"

npm_installed_version() { # <package>: prints the version installed under $NPM_PREFIX, or nothing
  local pj="$NPM_PREFIX/node_modules/$1/package.json"
  [ -f "$pj" ] && node -e 'process.stdout.write(require(process.argv[1]).version)' "$pj" 2>/dev/null || true
}

npm_wanted=()
[ "$(npm_installed_version solc)" = "$SOLC_VERSION" ] || npm_wanted+=("solc@${SOLC_VERSION}")
[ "$(npm_installed_version "$ANVIL_NPM_PACKAGE")" = "$ANVIL_VERSION" ] || npm_wanted+=("${ANVIL_NPM_PACKAGE}@${ANVIL_VERSION}")
if ((${#npm_wanted[@]})); then
  log "installing from npm into $NPM_PREFIX: ${npm_wanted[*]}"
  # Keep the full pin set in the prefix's package.json so one package's install never prunes the other.
  npm install --prefix "$NPM_PREFIX" --save-exact --no-audit --no-fund --loglevel=error \
    "solc@${SOLC_VERSION}" "${ANVIL_NPM_PACKAGE}@${ANVIL_VERSION}" >&2
fi

# anvil: link the real binary shipped by the npm package (not a node shim).
anvil_bin=""
for candidate in \
  "$NPM_PREFIX/node_modules/$ANVIL_NPM_PACKAGE/bin/anvil" \
  "$NPM_PREFIX/node_modules/$ANVIL_NPM_PACKAGE/anvil"; do
  if [ -f "$candidate" ]; then anvil_bin="$candidate"; break; fi
done
if [ -z "$anvil_bin" ]; then
  anvil_bin="$(find "$NPM_PREFIX/node_modules/$ANVIL_NPM_PACKAGE" -type f -name anvil | head -n1)"
fi
[ -n "$anvil_bin" ] || { log "no anvil binary in $ANVIL_NPM_PACKAGE@$ANVIL_VERSION"; exit 1; }
[ -x "$anvil_bin" ] || chmod +x "$anvil_bin"
[ "$(readlink "$TOOLS/bin/anvil" 2>/dev/null)" = "$anvil_bin" ] || ln -sfn "$anvil_bin" "$TOOLS/bin/anvil"

# solcjs: a wrapper around node solc's CLI (a symlink would break its relative requires).
solcjs_wrapper="#!/bin/sh
exec node \"$NPM_PREFIX/node_modules/solc/solc.js\" \"\$@\"
"
if [ "$(cat "$TOOLS/bin/solcjs" 2>/dev/null)" != "${solcjs_wrapper%$'\n'}" ]; then
  printf '%s' "$solcjs_wrapper" >"$TOOLS/bin/solcjs"
  chmod +x "$TOOLS/bin/solcjs"
fi

"$TOOLS/bin/solcjs" --version | grep -q "^${SOLC_VERSION}+" \
  || { log "solcjs does not report ${SOLC_VERSION}"; exit 1; }
log "solcjs $("$TOOLS/bin/solcjs" --version) at $TOOLS/bin/solcjs"
log "$("$TOOLS/bin/anvil" --version | head -n1) at $TOOLS/bin/anvil"

# --- Bitcoin regtest node (btcd + btcctl) -------------------------------------------------
BTCD_VERSION="v0.24.2"
if [ "$(go_bin_module_version "$GOBIN/btcd")" != "$BTCD_VERSION" ]; then
  log "installing btcd ${BTCD_VERSION} into $GOBIN"
  go install "github.com/btcsuite/btcd@${BTCD_VERSION}"
fi
if [ "$(go_bin_module_version "$GOBIN/btcctl")" != "$BTCD_VERSION" ]; then
  log "installing btcctl ${BTCD_VERSION} into $GOBIN"
  go install "github.com/btcsuite/btcd/cmd/btcctl@${BTCD_VERSION}"
fi
log "btcd + btcctl ${BTCD_VERSION} at $GOBIN/btcd, $GOBIN/btcctl ($("$GOBIN/btcd" --version))"

# --- Python for the example client (examples/python), from PyPI ---------------------------
# A venv of its own, pinned, so the machine's Python stays untouched; pip uses the machine's
# index configuration.
PYTHON_PACKAGES=(grpcio==1.85.1 grpcio-tools==1.85.1 protobuf==7.36.2 coincurve==21.0.0
  pycryptodome==4.4.0)
PYTHON_VENV="$TOOLS/python"
python_installed() { # every pinned package is in the venv at its version
  local found
  found="$("$PYTHON_VENV/bin/pip" freeze 2>/dev/null | grep -cixF -f <(printf '%s\n' "${PYTHON_PACKAGES[@]}") || true)"
  [ "$found" = "${#PYTHON_PACKAGES[@]}" ]
}
if ! python_installed; then
  log "installing ${PYTHON_PACKAGES[*]} into $PYTHON_VENV"
  python3 -m venv "$PYTHON_VENV"
  "$PYTHON_VENV/bin/pip" install --quiet "${PYTHON_PACKAGES[@]}"
fi
log "python packages for examples/python in $PYTHON_VENV"

# --- Container base image for the devnet ---------------------------------------------------
# A minimal Debian 12 root filesystem from Debian's mirror, imported into podman once;
# devnet/images.sh adds ipsat and cometbft to it without downloading anything.
export CONTAINERS_CONF="${CONTAINERS_CONF:-$(cd "$(dirname "$0")/.." && pwd)/devnet/containers.conf}"
BASE_IMAGE="localhost/ipsat-base:bookworm"
# The Debian mirror this machine's apt already uses (IPSAT_DEBIAN_MIRROR overrides it): the first
# non-security URI of the deb822 sources, else of sources.list.
debian_mirror() {
  if [ -n "${IPSAT_DEBIAN_MIRROR:-}" ]; then echo "$IPSAT_DEBIAN_MIRROR"; return; fi
  local uri
  uri="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }')"
  [ -n "$uri" ] || uri="$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list 2>/dev/null)"
  [ -n "$uri" ] || { echo "no Debian mirror in /etc/apt; set IPSAT_DEBIAN_MIRROR" >&2; return 1; }
  echo "$uri"
}
if ! podman image exists "$BASE_IMAGE"; then
  log "building $BASE_IMAGE with debootstrap (minbase)"
  rootfs="$(mktemp -d)"
  debootstrap --variant=minbase bookworm "$rootfs" "$(debian_mirror)" >/dev/null
  tar -C "$rootfs" -c . | podman import --quiet --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
fi
log "podman $(podman --version | awk '{print $3}'), base image $BASE_IMAGE"
