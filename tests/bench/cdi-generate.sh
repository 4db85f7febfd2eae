#!/bin/bash
# Whole-process median of `amd-ctk cdi generate` on the 8-GPU and the CPX fixtures
# (target: under 10 ms). hyperfine runs inside umockdev-run, so umockdev's own start-up
# is not counted, but everything amd-ctk does (libudev enumeration, KFD topology, JSON,
# atomic write) is.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
ctk=${AMD_CTK:-$repo/target/release/amd-ctk}
[ -x "$ctk" ] || { echo "build first: cargo build --release" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
printf '%-16s %10s %10s %10s\n' fixture median_ms min_ms max_ms
for fixture in mi300x-8 mi300x-cpx; do
    umockdev-run -d "$repo/tests/fixtures/$fixture.umockdev" -- \
        hyperfine -N --warmup 5 --runs 100 --style none --export-json "$out/$fixture.json" \
        "$ctk cdi generate --output $out/amd.json" >/dev/null
    python3 - "$out/$fixture.json" "$fixture" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print(f"{sys.argv[2]:<16} {r['median']*1e3:10.2f} {r['min']*1e3:10.2f} {r['max']*1e3:10.2f}")
PY
done
