//! Fuzzing what the hook reads from the runtime (issue 9, item 10): the OCI
//! state on stdin, config.json (the fast path's env-only read and the full
//! spec) and Podman's precreate document, 100 000 cases per reader, 0 panics.
//!
//! Inputs are documents built from each format's own keys and plausible
//! values (statuses, pids at the edges, bundles and root paths that are
//! empty, relative, absolute or hold a NUL, `AMD_VISIBLE_DEVICES` values),
//! serialized, half of them mutated byte-wise, plus raw bytes (see
//! tests/harness/fuzzkit.rs). Properties: nothing panics; what parses gives a
//! config path, an rootfs path and a request decision without panicking;
//! precreate's edit is idempotent.

use amd_ctk_e2e::fuzzkit;

use amd_container_common::request::{find_request, Request};
use amd_container_common::{ContainerEdits, DeviceNode};
use amd_container_hook::container;
use amd_container_hook::container_spec::{edit, view};
use amd_container_hook::SWARM_PREFIX;
use fuzzkit::Gen;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::path::Path;

const KEYS: &[&str] = &[
    "ociVersion",
    "id",
    "status",
    "pid",
    "bundle",
    "annotations",
    "process",
    "env",
    "args",
    "cwd",
    "user",
    "uid",
    "gid",
    "root",
    "path",
    "readonly",
    "linux",
    "devices",
    "resources",
    "allow",
    "type",
    "major",
    "minor",
    "access",
    "namespaces",
    "cgroupsPath",
    "mounts",
    "destination",
    "source",
    "options",
    "hooks",
    "prestart",
    "createRuntime",
];

const WORDS: &[&str] = &[
    "1.0.2",
    "creating",
    "created",
    "running",
    "stopped",
    "/run/containers/abc",
    "rootfs",
    "/",
    "..",
    "\0",
    "c",
    "rwm",
    "mount",
    "AMD_VISIBLE_DEVICES=",
    "AMD_VISIBLE_DEVICES=0",
    "AMD_VISIBLE_DEVICES=all",
    "AMD_VISIBLE_DEVICES=void",
    "DOCKER_RESOURCE_GPU=0x1",
    "PATH=/bin",
];

/// An `AMD_VISIBLE_DEVICES=…`-like entry or anything else.
fn env_entry(g: &mut Gen) -> Value {
    match g.below(8) {
        0..=3 => {
            let name = *g.pick(&[
                "AMD_VISIBLE_DEVICES",
                "DOCKER_RESOURCE_GPU",
                "DOCKER_RESOURCE_X",
                "PATH",
                "",
            ]);
            let value = g.string(&["0", "1", "all", "none", "void", ",", "-", "0x", "GPU-", ":"]);
            Value::from(format!("{name}={value}"))
        }
        4..=6 => Value::from(*g.pick(WORDS)),
        _ => g.json(KEYS, WORDS, 1),
    }
}

fn a_path(g: &mut Gen) -> Value {
    match g.below(6) {
        0 => Value::from(""),
        1 => Value::from("rootfs"),
        2 => Value::from("/var/lib/containers/x/merged"),
        3 => Value::from("a/../../b\0c"),
        4 => Value::from(g.string(WORDS)),
        _ => g.json(KEYS, WORDS, 1),
    }
}

/// An OCI state document.
fn state(g: &mut Gen) -> Value {
    let mut v = json!({
        "ociVersion": "1.0.2",
        "id": g.string(WORDS),
        "status": *g.pick(&["creating", "created", "running", "stopped", "paused", ""]),
        "bundle": a_path(g),
    });
    if g.below(4) != 0 {
        Gen::put(&mut v, &["pid"], Value::from(g.int()));
    }
    if g.one_in(3) {
        let k = *g.pick(KEYS);
        let x = g.json(KEYS, WORDS, 3);
        Gen::put(&mut v, &[k], x);
    }
    v
}

/// A config.json document.
fn config(g: &mut Gen) -> Value {
    let env: Vec<Value> = (0..g.below(6)).map(|_| env_entry(g)).collect();
    let mut v = json!({
        "ociVersion": *g.pick(&["1.0.2", "1.2.0", "", "x"]),
        "process": {"env": env, "args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "root": {"path": a_path(g)},
        "linux": {"resources": {"devices": [{"allow": false, "access": "rwm"}]}},
    });
    for _ in 0..g.below(3) {
        let at = *g.pick(&[
            &["process"][..],
            &["process", "env"],
            &["process", "user"],
            &["root"],
            &["root", "path"],
            &["linux"],
            &["linux", "devices"],
            &["linux", "resources", "devices"],
            &["mounts"],
            &["hooks"],
            &["annotations"],
        ]);
        let x = g.json(KEYS, WORDS, 3);
        Gen::put(&mut v, at, x);
    }
    v
}

fn edits(g: &mut Gen) -> ContainerEdits {
    ContainerEdits {
        device_nodes: (0..g.below(4))
            .map(|i| DeviceNode {
                path: format!("/dev/dri/renderD{}", 128 + i).into(),
                major: g.next_u64() as u32,
                minor: g.below(300) as u32,
                mode: 0o666,
                uid: 0,
                gid: g.next_u64() as u32,
            })
            .collect(),
    }
}

proptest! {
    #![proptest_config(fuzzkit::config())]

    #[test]
    fn state_reader_never_panics(seed in any::<u64>()) {
        let mut g = Gen::new(seed);
        let doc = state(&mut g);
        let bytes = g.document(&doc);
        match container::read_state(&bytes) {
            Ok(s) => {
                let _ = container::config_path(&s);
                let _ = s.pid();
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }

    #[test]
    fn env_only_reader_and_decision_never_panic(seed in any::<u64>()) {
        let mut g = Gen::new(seed);
        let doc = config(&mut g);
        let bytes = g.document(&doc);
        let path = Path::new("/run/bundle/config.json");
        if let Ok(env) = container::parse_env_only(path, &bytes) {
            let _ = view::may_request(&env, SWARM_PREFIX);
        }
        // The fast path's own read of the same bytes.
        if let Ok(env) = serde_json::from_slice::<view::EnvOnly>(&bytes) {
            let _ = view::may_request(&env, SWARM_PREFIX);
        }
    }

    #[test]
    fn spec_reader_never_panics(seed in any::<u64>()) {
        let mut g = Gen::new(seed);
        let doc = config(&mut g);
        let bytes = g.document(&doc);
        let path = Path::new("/run/bundle/config.json");
        match container::parse_spec(path, &bytes) {
            Ok(spec) => {
                for bundle in ["/run/bundle", "", "rel"] {
                    let _ = container::rootfs(&spec, Path::new(bundle));
                }
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }

    #[test]
    fn precreate_reader_and_edit_never_panic(seed in any::<u64>()) {
        let mut g = Gen::new(seed);
        let doc = config(&mut g);
        let bytes = g.document(&doc);
        let Ok(mut doc) = serde_json::from_slice::<Value>(&bytes) else {
            return Ok(());
        };
        let request = find_request(view::DocView(&doc).env(), "DOCKER_RESOURCE_GPU")
            .map(|var| Request::parse(var.name, var.value).map(|r| r.is_gpu()));
        let _ = request;
        let e = edits(&mut g);
        edit::add_devices(&mut doc, &e);
        let once = doc.clone();
        edit::add_devices(&mut doc, &e);
        prop_assert_eq!(&doc, &once, "edit::add_devices is not idempotent");
        let _ = serde_json::to_vec(&doc);
    }
}
