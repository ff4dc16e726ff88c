#!/usr/bin/env bash
# Generates the Python modules of the ipsat.v1 gRPC API from proto/ into examples/python/gen/
# with grpcio-tools (installed by scripts/install-deps.sh into $IPSAT_TOOLS/python).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
python="${IPSAT_PYTHON:-${IPSAT_TOOLS:-$HOME/.cache/ipsat/tools}/python/bin/python}"
rm -rf "$here/gen"
mkdir -p "$here/gen"
"$python" -m grpc_tools.protoc -I "$repo/proto" --python_out="$here/gen" \
  --grpc_python_out="$here/gen" "$repo"/proto/ipsat/v1/*.proto
