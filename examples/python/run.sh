#!/usr/bin/env bash
# Runs the example client (generating its modules from proto/ first if needed):
#   examples/python/run.sh --node 127.0.0.1:9090 --key-file ~/.ipsat-devnet/keys/faucet.json \
#     --to 0x... --amount 1000 [--output json]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${IPSAT_PYTHON:-${IPSAT_TOOLS:-$HOME/.cache/ipsat/tools}/python/bin/python}"
if [ ! -f "$here/gen/ipsat/v1/api_pb2_grpc.py" ] || [ -n "$(find "$here/../../proto" -name '*.proto' -newer "$here/gen/ipsat/v1/api_pb2_grpc.py")" ]; then
  bash "$here/generate.sh"
fi
exec "$python" "$here/client.py" "$@"
