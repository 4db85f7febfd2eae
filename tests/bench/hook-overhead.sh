#!/bin/bash
# What amd-container-hook costs a container start: the ratio of `runc run` wall time with
# the hook registered (prestart) to the same container without it, on cgroup v2 with the
# fake 8-GPU hardware (tests/fakehw), for
#   (a) no request           (the fast path every non-GPU container on the host takes)
#   (b) AMD_VISIBLE_DEVICES=all (8 GPUs: discovery, 17 nodes, BPF program replaced)
# and the hook's peak RSS. Targets: (a) <= 1.01, (b) <= 1.05, RSS <= 8 MB.
#
#   tests/bench/hook-overhead.sh [ROUNDS]      (root; default 30 rounds, after 5 warm-up)
#
# Each round runs the four containers once (a-without, a-with, b-without, b-with), in a
# shuffled order (fixed seed), so that drift on the host and what the previous container
# left to clean up hit all of them alike; the ratio is of the medians. The container runs `true` from a busybox rootfs. runc is timed
# from a Python loop inside one fake-hardware namespace, so the namespace set-up is not
# counted. For scale, a third variant registers /bin/true as the hook: the cost of runc
# running any hook at all (fork/exec, state on a pipe), which no hook can go below. The peak RSS comes from a separate pass where a wrapper starts the hook and
# reads its rusage (wait4), so the wrapper never distorts the timings.
# Set CGROUP=v1 to measure on cgroup v1 instead.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
hook=${AMD_CONTAINER_HOOK:-$repo/target/release/amd-container-hook}
rounds=${1:-30}
cgroup=${CGROUP:-v2}
fixture=$repo/tests/fixtures/mi300x-8.umockdev
[ "$(id -u)" = 0 ] || { echo "hook-overhead: must run as root" >&2; exit 1; }
[ -x "$hook" ] || { echo "hook-overhead: build first: cargo build --release" >&2; exit 1; }
for t in runc python3 busybox; do
    command -v "$t" >/dev/null || { echo "hook-overhead: $t not found (tests/install-deps.sh)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/hook-overhead.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$repo/tests/fakehw/make-bundle.sh" "$work/template" true >/dev/null
printf '[hook]\nlog-file = "%s/hook.log"\n' "$work" > "$work/config.toml"

# Bundles: {none,all} x {plain,hook}, sharing the template's rootfs; plus the RSS pass's.
python3 - "$work" "$hook" <<'PY'
import json, os, sys
work, hook = sys.argv[1], sys.argv[2]
base = json.load(open(f"{work}/template/config.json"))
base["root"]["path"] = f"{work}/template/rootfs"
env = ["SYSTEMD_DEVICE_VERIFY_SYSFS=0", f"AMD_CTK_CONFIG={work}/config.toml"]
def bundle(name, request, hook_entry):
    cfg = json.loads(json.dumps(base))
    if request:
        cfg["process"]["env"].append(f"AMD_VISIBLE_DEVICES={request}")
    if hook_entry:
        cfg["hooks"] = {"prestart": [hook_entry]}
    os.makedirs(f"{work}/{name}")
    json.dump(cfg, open(f"{work}/{name}/config.json", "w"), indent=2)
for req_name, request in (("none", None), ("all", "all")):
    bundle(f"{req_name}-plain", request, None)
    bundle(f"{req_name}-hook", request,
           {"path": hook, "args": ["amd-container-hook", "prestart"], "env": env})
    bundle(f"{req_name}-true", request,
           {"path": "/bin/true", "args": ["true"], "env": env})
    bundle(f"{req_name}-rss", request,
           {"path": "/usr/bin/python3",
            "args": ["python3", f"{work}/rss.py", f"{work}/{req_name}.rss", hook, "prestart"],
            "env": env})
PY

# The RSS wrapper: runs the hook with the wrapper's stdin (the OCI state), appends the
# hook's own peak RSS (KiB) to OUT, exits with its status.
cat > "$work/rss.py" <<'PY'
import os, sys
out, argv = sys.argv[1], sys.argv[2:]
pid = os.fork()
if pid == 0:
    os.execv(argv[0], ["amd-container-hook"] + argv[1:])
_, status, usage = os.wait4(pid, 0)
with open(out, "a") as f:
    f.write(f"{usage.ru_maxrss}\n")
sys.exit(os.waitstatus_to_exitcode(status))
PY

# The measurement, inside the fake-hardware namespace.
cat > "$work/measure.py" <<'PY'
import os, random, statistics, subprocess, sys, time
work, rounds = sys.argv[1], int(sys.argv[2])
root = f"{work}/runc-root"
names = ["none-plain", "none-hook", "none-true", "all-plain", "all-hook"]
n = 0
def run(name):
    global n
    n += 1
    t0 = time.perf_counter()
    r = subprocess.run(["runc", "--root", root, "run", "--bundle", f"{work}/{name}", f"ho{n}"],
                       stdin=subprocess.DEVNULL, capture_output=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"hook-overhead: {name}: runc run failed: {r.stderr.decode()}")
    return dt
for _ in range(5):
    for name in names:
        run(name)
times = {name: [] for name in names}
rng = random.Random(4369017)
for i in range(rounds):
    order = names[:]
    rng.shuffle(order)
    for name in order:
        times[name].append(run(name))
for _ in range(5):
    for req in ("none", "all"):
        run(f"{req}-rss")
med = {k: statistics.median(v) for k, v in times.items()}
def line(label, req, target, hook="hook"):
    plain, hooked = med[f"{req}-plain"], med[f"{req}-{hook}"]
    ratio = hooked / plain
    verdict = "ok" if target is None or ratio <= target else "OVER TARGET"
    tail = f"  (target <= {target:.2f}: {verdict})" if target else "  (any hook's floor)"
    print(f"{label:<32} without {plain*1e3:7.2f} ms  with {hooked*1e3:7.2f} ms  "
          f"+{(hooked - plain)*1e3:5.2f} ms  ratio {ratio:.3f}{tail}")
    return target is None or ratio <= target
print(f"runc run, median of {rounds} interleaved rounds, cgroup {os.environ['FAKEHW_CGROUP']}:")
ok = line("(a) no request", "none", 1.01)
line("    /bin/true as the hook", "none", None, "true")
ok = line("(b) AMD_VISIBLE_DEVICES=all", "all", 1.05) and ok
rss = max(int(x) for req in ("none", "all") for x in open(f"{work}/{req}.rss").read().split())
for req in ("none", "all"):
    vals = [int(x) for x in open(f"{work}/{req}.rss").read().split()]
    print(f"hook peak RSS, {req:<4} request: {max(vals)/1024:6.2f} MiB (max of {len(vals)} runs)")
verdict = "ok" if rss <= 8 * 1024 else "OVER TARGET"
print(f"hook peak RSS: {rss/1024:.2f} MiB (target <= 8 MiB: {verdict})")
sys.exit(0 if ok and rss <= 8 * 1024 else 3)
PY

status=0
"$repo/tests/fakehw/run-in-fakehw.sh" --fixture "$fixture" --cgroup "$cgroup" \
    --workdir "$work/fakehw" -- python3 "$work/measure.py" "$work" "$rounds" || status=$?
grep -q 'gave' "$work/hook.log" || { echo "hook-overhead: the hook never injected anything" >&2; exit 1; }
exit "$status"
