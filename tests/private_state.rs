//! No unprivileged user can stall the toolkit through its locks (issue 19):
//! a `flock` needs only a descriptor, a read-only one included, so a lock
//! anyone can open is a lock anyone can hold. As `nobody` (setpriv), in the
//! fake-hardware namespace of mi300x-8, in a directory everyone may enter:
//! - the GPU tracker: an older install (state and `FILE.lock` 0644) with
//!   `nobody` holding that lock: `amd-ctk gpu-tracker status` still answers
//!   at once; afterwards the state is 0600, its lock 0600 in a 0700
//!   directory, and `nobody` can neither read the state nor take the lock;
//! - the CDI record: `nobody` holding the state directory: `cdi generate`
//!   writes the spec and records it at once;
//! - `runtime configure`: `nobody` holding the config's directory (as
//!   `/etc/docker` is readable by all): the edit goes through at once.
//!
//! Each time root takes the same lock `nobody` could not (the control).

use amd_ctk_e2e::*;

fn ready() -> bool {
    require(is_root(), "root (fake hardware, setpriv)")
        && require(have("umockdev-run"), "umockdev-run")
        && require(have("setpriv"), "setpriv (util-linux)")
        && require(have("flock"), "flock (util-linux)")
}

/// Runs `script` after a prelude: `T`, a fresh directory everyone may
/// enter; `nobody CMD…`; `hold PATH` (nobody holds a flock on PATH in the
/// background, if it can open it); `took CMD…` (runs CMD, prints its exit
/// status and whether it took less than 5 s).
fn run(name: &str, script: &str) -> (String, std::process::Output) {
    let work = scratch(&format!("private-state-{name}"));
    let prelude = r#"
T=$(mktemp -d /tmp/amd-private.XXXXXX); chmod 755 "$T"
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$T"; }
trap cleanup EXIT
nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
hold() {
    if nobody flock -x -n "$1" sleep 60 </dev/null >/dev/null 2>&1 & then :; fi
    sleep 0.5
}
took() {
    local s=$(date +%s%N) rc=0
    "$@" >"$T/out" 2>&1 || rc=$?
    local ms=$(( ($(date +%s%N) - s) / 1000000 ))
    if [ "$ms" -lt 5000 ]; then echo "exit=$rc fast"; else echo "exit=$rc slow (${ms}ms)"; fi
    cat "$T/out"
}
ctk="$BIN/amd-ctk"
"#;
    let out = fakehw_sh("mi300x-8", "v1", &work, &format!("{prelude}{script}"));
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    (all, out)
}

#[test]
fn nobody_cannot_stall_the_gpu_tracker() {
    if !ready() {
        return;
    }
    let (all, out) = run(
        "tracker",
        r#"
printf '[gpu-tracker]\nstate-file = "%s"\n' "$T/state/gpu-tracker.json" > "$T/config.toml"
export AMD_CTK_CONFIG="$T/config.toml" SYSTEMD_DEVICE_VERIFY_SYSFS=0
"$ctk" gpu-tracker enable >/dev/null
# An install from before: state and lock world-readable, the lock beside it.
chmod 755 "$T/state"; chmod 644 "$T/state/gpu-tracker.json"
touch "$T/state/gpu-tracker.json.lock"; chmod 644 "$T/state/gpu-tracker.json.lock"
hold "$T/state/gpu-tracker.json.lock"
echo "== status"; took "$ctk" gpu-tracker status
echo "== modes"; cd "$T/state"; stat -c '%a %n' gpu-tracker.json locks locks/gpu-tracker.json.lock; cd /
echo "== legacy lock"; [ -e "$T/state/gpu-tracker.json.lock" ] && echo kept || echo removed
echo "== nobody"
nobody cat "$T/state/gpu-tracker.json" >/dev/null 2>&1 && echo "state readable" || echo "state unreadable"
nobody flock -x -n "$T/state/locks/gpu-tracker.json.lock" true 2>/dev/null && echo "lock taken" || echo "lock refused"
echo "== root"; flock -x -n "$T/state/locks/gpu-tracker.json.lock" true && echo "lock taken"
echo "== end"
"#,
    );
    assert!(out.status.success(), "{all}");
    assert_eq!(
        section(&all, "status").lines().next(),
        Some("exit=0 fast"),
        "a lock nobody holds stalled the tracker: {all}"
    );
    assert_eq!(
        section(&all, "modes"),
        "600 gpu-tracker.json\n700 locks\n600 locks/gpu-tracker.json.lock\n",
        "{all}"
    );
    assert_eq!(section(&all, "legacy lock"), "removed\n", "{all}");
    assert_eq!(
        section(&all, "nobody"),
        "state unreadable\nlock refused\n",
        "{all}"
    );
    assert_eq!(section(&all, "root"), "lock taken\n", "the control: {all}");
}

#[test]
fn nobody_cannot_stall_the_cdi_record() {
    if !ready() {
        return;
    }
    let (all, out) = run(
        "cdi",
        r#"
export AMD_CTK_CDI_STATE="$T/state/cdi-specs.json" SYSTEMD_DEVICE_VERIFY_SYSFS=0
mkdir -m 755 "$T/state" "$T/cdi"
hold "$T/state"
echo "== generate"; took "$ctk" cdi generate --output "$T/cdi/amd.json"
echo "== recorded"; grep -c "$T/cdi/amd.json" "$T/state/cdi-specs.json" || true
echo "== modes"; cd "$T/state"; stat -c '%a %n' cdi-specs.json locks locks/cdi-specs.json.lock; cd /
echo "== nobody"
nobody flock -x -n "$T/state/locks/cdi-specs.json.lock" true 2>/dev/null && echo "lock taken" || echo "lock refused"
echo "== root"; flock -x -n "$T/state/locks/cdi-specs.json.lock" true && echo "lock taken"
echo "== end"
"#,
    );
    assert!(out.status.success(), "{all}");
    assert_eq!(
        section(&all, "generate").lines().next(),
        Some("exit=0 fast"),
        "a directory nobody holds stalled cdi generate: {all}"
    );
    assert_eq!(section(&all, "recorded"), "1\n", "{all}");
    assert_eq!(
        section(&all, "modes"),
        "600 cdi-specs.json\n700 locks\n600 locks/cdi-specs.json.lock\n",
        "{all}"
    );
    assert_eq!(section(&all, "nobody"), "lock refused\n", "{all}");
    assert_eq!(section(&all, "root"), "lock taken\n", "the control: {all}");
}

#[test]
fn nobody_cannot_stall_runtime_configure() {
    if !ready() {
        return;
    }
    let (all, out) = run(
        "configure",
        r#"
mkdir -m 755 "$T/etc-docker"; echo '{}' > "$T/etc-docker/daemon.json"
export AMD_CTK_LOCK_DIR="$T/locks" AMD_CTK_LOCK_TIMEOUT=3 AMD_CTK_DOCKER_CDI_STATE="$T/state/docker-cdi.json"
hold "$T/etc-docker"
echo "== configure"; took "$ctk" runtime configure --runtime docker --config "$T/etc-docker/daemon.json"
echo "== edited"; grep -c amd-container-runtime "$T/etc-docker/daemon.json" || true
echo "== modes"; stat -c '%a' "$T/locks"; stat -c '%a' "$T"/locks/configure-*.lock
echo "== nobody"
for l in "$T"/locks/configure-*.lock; do
    nobody flock -x -n "$l" true 2>/dev/null && echo "lock taken" || echo "lock refused"
done
echo "== root"; for l in "$T"/locks/configure-*.lock; do flock -x -n "$l" true && echo "lock taken"; done
echo "== end"
"#,
    );
    assert!(out.status.success(), "{all}");
    assert_eq!(
        section(&all, "configure").lines().next(),
        Some("exit=0 fast"),
        "a directory nobody holds stalled runtime configure: {all}"
    );
    assert_eq!(section(&all, "edited"), "1\n", "{all}");
    // Two configure locks: daemon.json's directory and that of the record of
    // Docker's features.cdi (which configure turns on by default).
    assert_eq!(section(&all, "modes"), "700\n600\n600\n", "{all}");
    assert_eq!(
        section(&all, "nobody"),
        "lock refused\nlock refused\n",
        "{all}"
    );
    assert_eq!(
        section(&all, "root"),
        "lock taken\nlock taken\n",
        "the control: {all}"
    );
}
