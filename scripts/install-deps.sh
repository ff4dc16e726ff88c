#!/usr/bin/env bash
# Installs the real components IPsatoshi builds against and tests with.
# Idempotent: every step checks first, so a second run takes seconds.
# Nothing here runs at test time; tests only use what this script put in place.
set -euo pipefail

COMETBFT_VERSION="v0.38.26"
GOBIN="${GOBIN:-$(go env GOPATH)/bin}"
export GOBIN

log() { printf '[install-deps] %s\n' "$*" >&2; }

apt_packages=(libclang-dev clang)
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
