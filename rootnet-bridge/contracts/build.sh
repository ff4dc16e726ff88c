#!/usr/bin/env bash
# Compiles IpsatGateway.sol with the pinned solcjs (installed by scripts/install-deps.sh) into
# artifacts/IpsatGateway.json: pretty-printed, sorted keys, trailing newline, byte-reproducible
# (no metadata hash or CBOR in the bytecode). Any compiler warning fails the build.
#
#   build.sh          recompile and (re)write the artifact
#   build.sh --check  recompile to a temp file and diff against the committed artifact (exit 1 on mismatch)
set -euo pipefail

SOLC_VERSION="0.8.37"   # keep in step with scripts/install-deps.sh and the pragma
EVM_VERSION="shanghai"  # safe on every RSK network
OPTIMIZER_RUNS=200
CONTRACT="IpsatGateway"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
artifact="$here/artifacts/$CONTRACT.json"

mode="build"
case "${1:-}" in
  "") ;;
  --check) mode="check" ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

# shellcheck source=/dev/null
source "$root/scripts/env.sh"
solcjs="$(command -v solcjs || true)"
[ -n "$solcjs" ] || { echo "solcjs not found: run scripts/install-deps.sh" >&2; exit 1; }
have="$("$solcjs" --version)"
case "$have" in
  "$SOLC_VERSION+"*) ;;
  *) echo "solcjs is $have, want $SOLC_VERSION: run scripts/install-deps.sh" >&2; exit 1 ;;
esac

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Standard-JSON input. The source key is the bare file name so no local path leaks into the output.
node - "$here/$CONTRACT.sol" "$CONTRACT.sol" "$EVM_VERSION" "$OPTIMIZER_RUNS" >"$work/input.json" <<'EOF'
const fs = require("fs");
const [file, key, evmVersion, runs] = process.argv.slice(2);
process.stdout.write(JSON.stringify({
  language: "Solidity",
  sources: { [key]: { content: fs.readFileSync(file, "utf8") } },
  settings: {
    evmVersion,
    optimizer: { enabled: true, runs: Number(runs) },
    metadata: { bytecodeHash: "none", appendCBOR: false },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
}));
EOF

"$solcjs" --standard-json <"$work/input.json" >"$work/output.raw"

node - "$work/output.raw" "$CONTRACT.sol" "$CONTRACT" "$have" "$EVM_VERSION" "$OPTIMIZER_RUNS" \
  "$here/$CONTRACT.sol" >"$work/$CONTRACT.json" <<'EOF'
const fs = require("fs");
const crypto = require("crypto");
const [rawFile, key, name, solcVersion, evmVersion, runs, sourceFile] = process.argv.slice(2);
const raw = fs.readFileSync(rawFile, "utf8");
// solcjs prints a ">>> Cannot retry compilation with SMT ..." banner on stdout before the JSON.
const out = JSON.parse(raw.slice(raw.indexOf("{")));
const problems = (out.errors || []).filter((e) => e.severity === "error" || e.severity === "warning");
if (problems.length) {
  for (const e of problems) process.stderr.write(e.formattedMessage || e.message + "\n");
  process.stderr.write(`${problems.length} compiler error(s)/warning(s): refusing to write the artifact\n`);
  process.exit(1);
}
const c = out.contracts[key][name];
const sorted = (v) =>
  Array.isArray(v) ? v.map(sorted)
  : v && typeof v === "object" ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted(v[k])]))
  : v;
const artifact = {
  contractName: name,
  sourceName: key,
  sourceSha256: crypto.createHash("sha256").update(fs.readFileSync(sourceFile)).digest("hex"),
  solcVersion,
  evmVersion,
  optimizer: { enabled: true, runs: Number(runs) },
  metadata: { appendCBOR: false, bytecodeHash: "none" },
  abi: c.abi,
  bytecode: "0x" + c.evm.bytecode.object,
  deployedBytecode: "0x" + c.evm.deployedBytecode.object,
};
process.stdout.write(JSON.stringify(sorted(artifact), null, 2) + "\n");
EOF

if [ "$mode" = "check" ]; then
  if [ ! -f "$artifact" ]; then
    echo "missing $artifact: run $0" >&2
    exit 1
  fi
  if ! diff -u "$artifact" "$work/$CONTRACT.json" >"$work/diff"; then
    head -n 40 "$work/diff" >&2
    echo "$artifact is stale: run $0 and commit the result" >&2
    exit 1
  fi
  echo "$artifact is up to date ($have)" >&2
else
  mkdir -p "$here/artifacts"
  cp "$work/$CONTRACT.json" "$artifact"
  echo "wrote $artifact ($have, evm $EVM_VERSION, $(($(node -p "require('$artifact').deployedBytecode.length") / 2 - 1)) bytes deployed)" >&2
fi
