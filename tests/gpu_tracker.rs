//! The GPU tracker end to end, under real runc on the fake mi300x-8
//! (harness/runc.rs): `amd-ctk gpu-tracker` sets GPUs exclusive, the hook
//! enforces it at create and releases at `poststop`.
//!
//! One script in the fake-hardware namespace, sections `== name`:
//! - disabled by default; `enable`; `0 exclusive`
//! - container A (`runc create`, stays created) holds GPU 0; status says so
//! - B asking for GPU 0 fails to be created, the error naming A; nothing of
//!   B is left in the tracker
//! - C asks for shared GPU 1 and runs; its poststop is registered as Podman
//!   and CRI-O register it (argv `prestart`, state `stopped`): freed after
//! - A deleted (`runc delete -f`, poststop): GPU 0 free, B2 gets it
//! - E holds exclusive GPU 2 with no poststop registered and is deleted (as
//!   after a crash): the entry is reclaimed, F gets GPU 2

use amd_ctk_e2e::runc::{ready, Bundle, Cgroup, Session};
use amd_ctk_e2e::*;
use serde_json::json;

/// A bundle asking for `value`, hooks at prestart and (unless `None`)
/// at poststop with argv `poststop_argv`; the hook reads `config`.
fn bundle(
    s: &Session,
    label: &str,
    value: &str,
    poststop_argv: Option<&str>,
    config: &str,
) -> Bundle {
    let mut b = s.gpu_bundle(label, value);
    if let Some(argv) = poststop_argv {
        let mut entry = b.config["hooks"]["prestart"][0].clone();
        entry["args"] = json!(["amd-container-hook", argv]);
        b.config["hooks"]["poststop"] = json!([entry]);
    }
    std::fs::write(b.hook_config_path(), config).unwrap();
    b.save();
    b
}

/// The session's config with the tracker on (state in the session's
/// directory; the log at debug level if `debug`), written as
/// `tracker.toml`: (state file, config).
fn tracker_config(s: &Session, debug: bool) -> (std::path::PathBuf, String) {
    let state = s.dir.join("tracker/state.json");
    let config = format!(
        "[hook]\nlog-file = \"{}\"\n{}[gpu-tracker]\nstate-file = \"{}\"\n",
        s.dir.join("hook.log").display(),
        if debug { "log-level = \"debug\"\n" } else { "" },
        state.display()
    );
    std::fs::write(s.dir.join("tracker.toml"), &config).unwrap();
    (state, config)
}

#[test]
fn exclusive_gpu_is_held_refused_released_and_reclaimed() {
    if !ready() {
        return;
    }
    let s = Session::new("tracker", "mi300x-8", Cgroup::V1);
    let (state, config) = tracker_config(&s, true);
    let mut a = bundle(&s, "a", "0", Some("poststop"), &config);
    a.args(&["/bin/busybox", "sleep", "300"]);
    a.save();
    let mut b = bundle(&s, "b", "0", Some("poststop"), &config);
    b.probe(&["/dev/dri/renderD128"]);
    b.save();
    let mut c = bundle(&s, "c", "1", Some("prestart"), &config);
    c.probe(&[]);
    c.save();
    let mut e = bundle(&s, "e", "2", None, &config);
    e.args(&["/bin/busybox", "sleep", "300"]);
    e.save();
    let mut f = bundle(&s, "f", "2", Some("poststop"), &config);
    f.probe(&[]);
    f.save();
    let script = format!(
        r#"
export AMD_CTK_CONFIG="$W/tracker.toml" SYSTEMD_DEVICE_VERIFY_SYSFS=0
ctk() {{ {ctk} gpu-tracker "$@" 2>&1 || echo "exit $?"; }}
runc_() {{ runc --root "$RUNC_ROOT" "$@"; }}
echo "== disabled"; ctk status
echo "== enable"; ctk enable; ctk enable; ctk 0 exclusive; ctk 2 exclusive
echo "== create a"; runc_ create --bundle {a} {a_id} </dev/null >/dev/null 2>"$W/a.err" && echo created || cat "$W/a.err"
echo "== status a"; ctk status
echo "== run b"; runc_ run --bundle {b} {b_id} </dev/null 2>&1 && echo "b ran" || echo "b refused"
echo "== status b"; ctk status
echo "== run c"; runc_ run --bundle {c} {c_id} </dev/null >/dev/null 2>&1 && echo "c ran" || echo "c refused"
echo "== status c"; ctk status
echo "== delete a"; runc_ delete -f {a_id} 2>&1; ctk status
echo "== run b2"; runc_ run --bundle {b} {b_id}-2 </dev/null >/dev/null 2>&1 && echo "b2 ran" || echo "b2 refused"
echo "== create e"; runc_ create --bundle {e} {e_id} </dev/null >/dev/null 2>"$W/e.err" && echo created || cat "$W/e.err"
ctk status
echo "== kill e"; runc_ delete -f {e_id} 2>&1; ctk status
echo "== run f"; runc_ run --bundle {f} {f_id} </dev/null >/dev/null 2>&1 && echo "f ran" || echo "f refused"
ctk status
echo "== end"
"#,
        ctk = bin("amd-ctk").display(),
        a = a.dir.display(),
        a_id = a.id,
        b = b.dir.display(),
        b_id = b.id,
        c = c.dir.display(),
        c_id = c.id,
        e = e.dir.display(),
        e_id = e.id,
        f = f.dir.display(),
        f_id = f.id,
    );
    let out = s.sh(&script);
    let all = format!("{}{}", out.stdout, out.stderr);
    let log = std::fs::read_to_string(s.dir.join("hook.log")).unwrap_or_default();
    let ctx = format!("{out}\n--- tracker hook log\n{log}");
    assert!(out.success(), "{ctx}");

    assert_eq!(
        section(&all, "disabled").trim(),
        "GPU Tracker is disabled",
        "{ctx}"
    );
    assert_eq!(
        section(&all, "enable"),
        "GPU Tracker has been enabled\nGPU Tracker is already enabled\n\
         GPUs [0] have been made exclusive\nGPUs [2] have been made exclusive\n",
        "{ctx}"
    );
    assert_eq!(section(&all, "create a").trim(), "created", "{ctx}");
    let st = section(&all, "status a");
    assert!(
        st.contains("GPU Id    UUID                     Accessibility       Container Ids"),
        "{ctx}"
    );
    let gpu0 = tracker_row(st, 0);
    assert!(
        gpu0.starts_with("0         0x")
            && gpu0.ends_with(&format!("Exclusive           {}", a.id)),
        "GPU 0: exclusive, held by A: {ctx}"
    );
    assert!(
        tracker_row(st, 1).ends_with("Shared              -"),
        "{ctx}"
    );

    let refused = section(&all, "run b");
    assert!(refused.contains("b refused"), "{ctx}");
    assert!(
        refused.contains(&format!(
            "GPU 0 is exclusive and held by container {}",
            a.id
        )),
        "the error names the holder: {ctx}"
    );
    assert!(
        !section(&all, "status b").contains(&b.id),
        "a refused create holds nothing: {ctx}"
    );

    assert!(section(&all, "run c").contains("c ran"), "{ctx}");
    assert!(
        !section(&all, "status c").contains(&c.id),
        "released at poststop (status stopped, argv prestart): {ctx}"
    );

    let deleted = section(&all, "delete a");
    assert!(
        tracker_row(deleted, 0).ends_with("Exclusive           -"),
        "A's poststop freed GPU 0: {ctx}"
    );
    assert!(section(&all, "run b2").contains("b2 ran"), "{ctx}");

    let held = section(&all, "create e");
    assert!(held.starts_with("created"), "{ctx}");
    assert!(tracker_row(held, 2).contains(&e.id), "{ctx}");
    let killed = section(&all, "kill e");
    assert!(
        tracker_row(killed, 2).ends_with("Exclusive           -"),
        "E's entry reclaimed without poststop: {ctx}"
    );
    assert!(section(&all, "run f").contains("f ran"), "{ctx}");
    assert!(state.is_file());
    assert!(s.leftover_containers().is_empty(), "{ctx}");
}

/// 50 `runc create`s at once, all asking for exclusive GPU 0: exactly one is
/// created and holds it; the 49 others fail naming a holder.
#[test]
fn fifty_concurrent_creates_one_gets_the_exclusive_gpu() {
    if !ready() {
        return;
    }
    const N: usize = 50;
    let s = Session::new("tracker-race", "mi300x-8", Cgroup::V1);
    let (_, config) = tracker_config(&s, false);
    let bundles: Vec<Bundle> = (0..N)
        .map(|i| {
            let mut b = bundle(&s, &format!("r{i}"), "0", Some("poststop"), &config);
            b.args(&["/bin/busybox", "sleep", "300"]);
            b.save();
            b
        })
        .collect();
    let list: Vec<String> = bundles
        .iter()
        .map(|b| format!("{} {}", b.dir.display(), b.id))
        .collect();
    let script = format!(
        r#"
export AMD_CTK_CONFIG="$W/tracker.toml" SYSTEMD_DEVICE_VERIFY_SYSFS=0
{ctk} gpu-tracker enable >/dev/null
{ctk} gpu-tracker 0 exclusive >/dev/null
while read -r dir id; do
    ( runc --root "$RUNC_ROOT" create --bundle "$dir" "$id" </dev/null >/dev/null 2>"$W/$id.err" \
        && echo "created $id" || echo "failed $id" ) &
done <<'LIST'
{list}
LIST
wait
echo "== status"
{ctk} gpu-tracker status
echo "== errors"
cat "$W"/*.err | grep -c 'GPU 0 is exclusive and held by container' || true
"#,
        ctk = bin("amd-ctk").display(),
        list = list.join("\n"),
    );
    let out = s.sh(&script);
    assert!(out.success(), "{out}");
    let created: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("created "))
        .collect();
    assert_eq!(created.len(), 1, "exactly one create wins: {out}");
    let failed = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("failed "))
        .count();
    assert_eq!(failed, N - 1, "{out}");
    let status = section(&out.stdout, "status");
    assert!(
        tracker_row(status, 0).ends_with(&format!("Exclusive           {}", created[0])),
        "the winner holds GPU 0, alone: {out}"
    );
    assert_eq!(
        section(&out.stdout, "errors").trim(),
        (N - 1).to_string(),
        "every loser was told who holds it: {out}"
    );
}

/// One container id under two runc roots (as two containerd namespaces
/// have): two containers, not one. A (root 1) holds exclusive GPU 0 and
/// shared GPU 1; B, the same id under root 2, is refused GPU 0 naming the
/// holder; B2 (that id under root 2 again) shares GPU 1, and its deletion
/// (poststop) leaves A holding GPU 1. Deleting A frees both.
#[test]
fn a_reused_id_under_another_root_is_another_container() {
    if !ready() {
        return;
    }
    let s = Session::new("tracker-reuse", "mi300x-8", Cgroup::V1);
    let (_, config) = tracker_config(&s, true);
    // Each its own cgroup, as containers of two namespaces have (runc's
    // default, /ID, would be one cgroup for all three).
    let sleeper = |label: &str, value: &str| {
        let mut x = bundle(&s, label, value, Some("poststop"), &config);
        x.args(&["/bin/busybox", "sleep", "300"]);
        x.config["linux"]["cgroupsPath"] = json!(format!("/{}", x.id));
        x.save();
        x
    };
    let (a, b, b2) = (sleeper("a", "0,1"), sleeper("b", "0"), sleeper("b2", "1"));
    let id = &a.id;
    let script = format!(
        r#"
export AMD_CTK_CONFIG="$W/tracker.toml" SYSTEMD_DEVICE_VERIFY_SYSFS=0
ctk() {{ {ctk} gpu-tracker "$@" 2>&1 || echo "exit $?"; }}
R2="$W/runc-root2"; mkdir -p "$R2"
ctk enable >/dev/null; ctk 0 exclusive >/dev/null
echo "== create a"; runc --root "$RUNC_ROOT" create --bundle {a} {id} </dev/null >/dev/null 2>"$W/a.err" && echo created || cat "$W/a.err"
echo "== create b"; runc --root "$R2" create --bundle {b} {id} </dev/null >/dev/null 2>"$W/b.err" && echo "b created" || {{ echo "b refused"; cat "$W/b.err"; }}
runc --root "$R2" delete -f {id} >/dev/null 2>&1 || true
echo "== create b2"; runc --root "$R2" create --bundle {b2} {id} </dev/null >/dev/null 2>"$W/b2.err" && echo "b2 created" || cat "$W/b2.err"
echo "== delete b2"; runc --root "$R2" delete -f {id} 2>&1; ctk status
echo "== delete a"; runc --root "$RUNC_ROOT" delete -f {id} 2>&1; ctk status
echo "== end"
"#,
        ctk = bin("amd-ctk").display(),
        a = a.dir.display(),
        b = b.dir.display(),
        b2 = b2.dir.display(),
    );
    let out = s.sh(&script);
    let all = format!("{}{}", out.stdout, out.stderr);
    let log = std::fs::read_to_string(s.dir.join("hook.log")).unwrap_or_default();
    let ctx = format!("{out}\n--- tracker hook log\n{log}");
    assert!(out.success(), "{ctx}");
    assert_eq!(section(&all, "create a").trim(), "created", "{ctx}");
    let refused = section(&all, "create b");
    assert!(
        refused.contains("b refused")
            && refused.contains(&format!("GPU 0 is exclusive and held by container {id}")),
        "the same id under another root got A's exclusive GPU: {ctx}"
    );
    assert!(section(&all, "create b2").contains("b2 created"), "{ctx}");
    let after_b2 = section(&all, "delete b2");
    assert!(
        tracker_row(after_b2, 1).ends_with(&format!("Shared              {id}")),
        "B2's poststop freed A's GPU 1: {ctx}"
    );
    assert!(
        tracker_row(after_b2, 0).ends_with(&format!("Exclusive           {id}")),
        "{ctx}"
    );
    let after_a = section(&all, "delete a");
    assert!(
        tracker_row(after_a, 0).ends_with("Exclusive           -")
            && tracker_row(after_a, 1).ends_with("Shared              -"),
        "{ctx}"
    );
    assert!(s.leftover_containers().is_empty(), "{ctx}");
}
