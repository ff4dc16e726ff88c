# Sourced by the scripts: where tools and build artefacts live.
# A build directory outside the clone lets every checkout (and CI) reuse compiled crates,
# RocksDB above all (~10 minutes to build from scratch on 2 cores).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ipsat/target}"
GOBIN_DIR="$(go env GOBIN 2>/dev/null || true)"
[ -n "$GOBIN_DIR" ] || GOBIN_DIR="$(go env GOPATH 2>/dev/null || echo "$HOME/go")/bin"
export PATH="$GOBIN_DIR:$HOME/.cargo/bin:$PATH"
# Tools installed from npm by scripts/install-deps.sh (anvil, solcjs).
export IPSAT_TOOLS="${IPSAT_TOOLS:-$HOME/.cache/ipsat/tools}"
export PATH="$IPSAT_TOOLS/bin:$PATH"
# podman's settings for this project (runc, cgroupfs, no ulimits): see devnet/containers.conf.
export CONTAINERS_CONF="${CONTAINERS_CONF:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/devnet/containers.conf}"
