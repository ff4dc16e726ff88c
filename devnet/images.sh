#!/usr/bin/env bash
# Builds localhost/ipsat:dev (or $IPSAT_IMAGE) from devnet/Containerfile with podman.
#   IPSAT_BIN     the ipsat binary to ship (default: $CARGO_TARGET_DIR/debug/ipsat)
#   COMETBFT_BIN  the cometbft binary to ship (default: the one on PATH)
# anvil, btcd and btcctl (RSK and Bitcoin of the tree) come from PATH, as installed by
# scripts/install-deps.sh.
# The base image comes from scripts/install-deps.sh; this script downloads nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

IMAGE="${IPSAT_IMAGE:-localhost/ipsat:dev}"
IPSAT_BIN="${IPSAT_BIN:-$CARGO_TARGET_DIR/debug/ipsat}"
COMETBFT_BIN="${COMETBFT_BIN:-$(command -v cometbft || true)}"

if ! podman image exists localhost/ipsat-base:bookworm; then
  echo "localhost/ipsat-base:bookworm is missing: run scripts/install-deps.sh" >&2
  exit 1
fi
ANVIL_BIN="$(command -v anvil || true)"
BTCD_BIN="$(command -v btcd || true)"
BTCCTL_BIN="$(command -v btcctl || true)"
for bin in "$IPSAT_BIN" "$COMETBFT_BIN" "$ANVIL_BIN" "$BTCD_BIN" "$BTCCTL_BIN"; do
  [ -x "$bin" ] || { echo "not an executable: '$bin' (build ipsat / install cometbft first)" >&2; exit 1; }
done

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
# Debug symbols are most of a dev build's size; the image does not need them.
cp "$IPSAT_BIN" "$context/ipsat"
strip "$context/ipsat"
cp "$COMETBFT_BIN" "$context/cometbft"
cp -L "$ANVIL_BIN" "$context/anvil"
cp "$BTCD_BIN" "$context/btcd"
cp "$BTCCTL_BIN" "$context/btcctl"
cp devnet/tcp-forward.pl "$context/tcp-forward.pl"
podman build --quiet --pull=never -t "$IMAGE" -f devnet/Containerfile "$context" >/dev/null
echo "built $IMAGE ($("$IPSAT_BIN" --version), cometbft $("$COMETBFT_BIN" version))" >&2
