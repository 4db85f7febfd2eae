//! Golden-output tests of the real `amd-ctk` binary under `umockdev-run`, one
//! per fixture and command, plus the CDI spec checks: the official schema
//! (the copy in ctk/schema), atomic writes, and `cdi validate`.

use amd_ctk_e2e::*;
use serde_json::Value;
use std::path::Path;

/// stdout, then stderr and the exit code when they say anything.
fn transcript(out: &std::process::Output) -> String {
    let mut s = text(&out.stdout);
    let err = text(&out.stderr);
    if !err.is_empty() {
        s.push_str("--- stderr\n");
        s.push_str(&err);
    }
    if !out.status.success() {
        s.push_str(&format!("--- exit {}\n", out.status.code().unwrap_or(-1)));
    }
    s
}

const COMMANDS: &[(&str, &[&str])] = &[
    ("cdi-list.txt", &["cdi", "list"]),
    ("cdi-list.json", &["cdi", "list", "--format", "json"]),
    ("gpu-list.txt", &["gpu", "list"]),
    ("gpu-list.json", &["gpu", "list", "--format", "json"]),
    ("cdi-generate.json", &["cdi", "generate", "--output", "-"]),
    (
        "cdi-generate.yaml",
        &["cdi", "generate", "--output", "-", "--format", "yaml"],
    ),
    (
        "cdi-generate-uuid.json",
        &[
            "cdi",
            "generate",
            "--output",
            "-",
            "--device-name-strategy",
            "index,uuid",
        ],
    ),
];

#[test]
fn golden_outputs_on_every_fixture() {
    if !umockdev_ready() {
        return;
    }
    for fixture in FIXTURES {
        for (name, args) in COMMANDS {
            assert_golden(
                &format!("{fixture}/{name}"),
                &transcript(&ctk_under(fixture, args)),
            );
        }
    }
}

#[test]
fn radeon_cdi_list_is_exactly_the_documented_text() {
    if !umockdev_ready() {
        return;
    }
    let out = ctk_under("radeon", &["cdi", "list"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        "Found 1 AMD GPU device\namd.com/gpu=all\namd.com/gpu=0\n  /dev/dri/card1\n  /dev/dri/renderD128\n\
         amd.com/gpu=0xe8421b571072defe\n  /dev/dri/card1\n  /dev/dri/renderD128\n\
         amd.com/gpu=0000:03:00.0\n  /dev/dri/card1\n  /dev/dri/renderD128\n"
    );
}

fn official_schema() -> jsonschema::Validator {
    let dir = repo().join("ctk/schema");
    let read = |f: &str| -> Value {
        let p = dir.join(f);
        serde_json::from_str(
            &std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
        )
        .unwrap()
    };
    jsonschema::options()
        .with_resource(
            "json-schema:///defs.json",
            jsonschema::Resource::from_contents(read("defs.json")).unwrap(),
        )
        .build(&read("schema.json"))
        .expect("official schema compiles")
}

fn assert_schema_valid(validator: &jsonschema::Validator, doc: &Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} breaks the CDI schema: {errors:#?}"
    );
}

#[test]
fn the_schema_rejects_a_broken_spec() {
    // Guards the schema check below against passing vacuously.
    let v = official_schema();
    let bad = serde_json::json!({"kind": "amd.com/gpu", "devices": [{"name": "0"}]});
    assert!(v.iter_errors(&bad).count() >= 2);
    let good: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("ctk/schema/example-good.json")).unwrap(),
    )
    .unwrap();
    assert_schema_valid(&v, &good, "the schema's own example");
}

#[test]
fn generated_specs_validate_against_the_official_schema() {
    if !umockdev_ready() {
        return;
    }
    let v = official_schema();
    for fixture in FIXTURES.iter().filter(|f| **f != "no-amdgpu") {
        for strategy in ["index", "uuid", "index,uuid"] {
            let base = [
                "cdi",
                "generate",
                "--output",
                "-",
                "--device-name-strategy",
                strategy,
            ];
            let json_out = ctk_under(fixture, &base);
            assert!(
                json_out.status.success(),
                "{fixture}: {}",
                text(&json_out.stderr)
            );
            let doc: Value = serde_json::from_slice(&json_out.stdout).unwrap();
            assert_schema_valid(&v, &doc, &format!("{fixture} json {strategy}"));
            // The lowest version the content needs: numeric names need 0.5.0,
            // nothing needs more (podman 4.3 reads at most 0.5.0).
            let numeric = doc["devices"].as_array().unwrap().iter().any(|d| {
                d["name"]
                    .as_str()
                    .unwrap()
                    .starts_with(|c: char| c.is_ascii_digit())
            });
            let expected = if numeric { "0.5.0" } else { "0.3.0" };
            assert_eq!(doc["cdiVersion"], expected, "{fixture} {strategy}");

            let yaml_out = ctk_under(fixture, &[&base[..], &["--format", "yaml"]].concat());
            assert!(yaml_out.status.success());
            let ydoc: Value = serde_yaml_ng::from_slice(&yaml_out.stdout).unwrap();
            assert_schema_valid(&v, &ydoc, &format!("{fixture} yaml {strategy}"));
            assert_eq!(ydoc, doc, "{fixture}: yaml and json carry the same spec");
        }
    }
}

/// SHA-256 of the official CDI schema files as published by the Container
/// Device Interface project (Apache-2.0), pinned when they were copied into
/// ctk/schema (see its README).
const OFFICIAL_SHA256: [(&str, &str); 3] = [
    (
        "schema.json",
        "b82848e4ded6442a65d603aaa3f768b8216c25a39eaed8214c9021ec68645b75",
    ),
    (
        "defs.json",
        "cef28398eb3c95378dced78c4c98c2422ac06585613826d351f01ffecce60a54",
    ),
    (
        "example-good.json",
        "748b7787fbe1a761c291955e7808da2210373bafe5f7eff672d3650c4d718ee7",
    ),
];

#[test]
fn embedded_schema_is_the_official_one() {
    for (f, official) in OFFICIAL_SHA256 {
        let out = std::process::Command::new("sha256sum")
            .arg(repo().join("ctk/schema").join(f))
            .output()
            .expect("sha256sum runs");
        let ours = text(&out.stdout);
        assert_eq!(
            ours.split_whitespace().next(),
            Some(official),
            "ctk/schema/{f} differs from the official copy"
        );
    }
}

#[test]
fn generate_writes_atomically_and_leaves_other_files_alone() {
    if !umockdev_ready() {
        return;
    }
    let dir = scratch("generate");
    let other = dir.join("cdi/other-vendor.json");
    std::fs::create_dir_all(other.parent().unwrap()).unwrap();
    std::fs::write(&other, b"{\"keep\": true}").unwrap();
    for (file, yaml) in [
        ("cdi/amd.json", false),
        ("cdi/amd.yaml", true),
        ("new/dir/amd.yml", true),
    ] {
        let path = dir.join(file);
        let out = ctk_under(
            "mi300x-8",
            &["cdi", "generate", "--output", path.to_str().unwrap()],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(
            text(&out.stdout),
            format!("Generated CDI spec: {}\n", path.display())
        );
        let body = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            body.trim_start().starts_with('{'),
            !yaml,
            "{file}: format from the extension"
        );
    }
    assert_eq!(std::fs::read(&other).unwrap(), b"{\"keep\": true}");
    let names: Vec<String> = std::fs::read_dir(dir.join("cdi"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "no temp files left: {names:?}");
    // Overwriting keeps the file valid (regenerate in place).
    let path = dir.join("cdi/amd.json");
    assert!(ctk_under(
        "radeon",
        &["cdi", "generate", "--output", path.to_str().unwrap()]
    )
    .status
    .success());
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // 0, 0x…, 0000:03:00.0 and all.
    assert_eq!(doc["devices"].as_array().unwrap().len(), 4);
}

#[test]
fn generate_without_gpus_fails_and_writes_nothing() {
    if !umockdev_ready() {
        return;
    }
    let dir = scratch("generate-none");
    let path = dir.join("amd.json");
    let out = ctk_under(
        "no-amdgpu",
        &["cdi", "generate", "--output", path.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("the amdgpu driver is not loaded")
            && text(&out.stderr).contains("no CDI spec written"),
        "{}",
        text(&out.stderr)
    );
    assert!(!path.exists());
}

/// `ctk` with `/sys/module/amdgpu` present in the testbed: the driver is
/// loaded (umockdev's fixtures describe devices only).
fn ctk_with_driver(fixture: &str, args: &[&str]) -> std::process::Output {
    let script = r#"mkdir -p "$UMOCKDEV_DIR/sys/module/amdgpu/drivers" && exec "$@""#;
    let ctk = bin("amd-ctk");
    let mut full = vec!["-c", script, "sh", ctk.to_str().unwrap()];
    full.extend_from_slice(args);
    under_fixture(fixture, Path::new("/bin/sh"), &full)
}

/// Without GPUs, `cdi list`, `gpu list` (both formats) and `cdi generate`
/// exit 1 with nothing on stdout, and say whether the driver is loaded:
/// no driver (the no-amdgpu fixture as it is), or a driver without GPUs
/// (the same fixture with /sys/module/amdgpu). With GPUs, the module
/// directory changes nothing.
#[test]
fn no_driver_and_no_gpu_are_errors_with_different_messages() {
    if !umockdev_ready() {
        return;
    }
    let commands: [&[&str]; 5] = [
        &["cdi", "list"],
        &["cdi", "list", "--format", "json"],
        &["gpu", "list"],
        &["gpu", "list", "--format", "json"],
        &["cdi", "generate", "--output", "-"],
    ];
    for args in commands {
        for (out, want, not) in [
            (
                ctk_under("no-amdgpu", args),
                "the amdgpu driver is not loaded (/sys/module/amdgpu does not exist)",
                "is loaded",
            ),
            (
                ctk_with_driver("no-amdgpu", args),
                "the amdgpu driver is loaded (/sys/module/amdgpu) but drives no GPU",
                "not loaded",
            ),
        ] {
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
            assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
            assert!(err.contains(want), "{args:?}: {err}");
            assert!(!err.contains(not), "{args:?}: {err}");
        }
        let with_gpu = ctk_with_driver("radeon", args);
        assert!(
            with_gpu.status.success(),
            "{args:?}: {}",
            text(&with_gpu.stderr)
        );
        assert_eq!(
            with_gpu.stdout,
            ctk_under("radeon", args).stdout,
            "{args:?}"
        );
    }
}

fn validate(fixture: &str, path: &Path) -> (i32, String) {
    let out = ctk_under(
        fixture,
        &["cdi", "validate", "--path", path.to_str().unwrap()],
    );
    (out.status.code().unwrap_or(-1), transcript(&out))
}

#[test]
fn validate_reports_valid_stale_invalid_and_unreadable() {
    if !umockdev_ready() {
        return;
    }
    let dir = scratch("validate");
    let spec = dir.join("amd.json");
    assert!(ctk_under(
        "mi300x-8",
        &["cdi", "generate", "--output", spec.to_str().unwrap()]
    )
    .status
    .success());

    let (code, out) = validate("mi300x-8", &spec);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("valid and up to date"), "{out}");

    // Same spec on a host with other GPUs: stale.
    let (code, out) = validate("radeon", &spec);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("stale: amd.com/gpu=7 is in the spec but not on this host"),
        "{out}"
    );

    // A changed major:minor is noticed.
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&spec).unwrap()).unwrap();
    doc["devices"][0]["containerEdits"]["deviceNodes"][1]["minor"] = 140.into();
    let changed = dir.join("changed.json");
    std::fs::write(&changed, serde_json::to_vec(&doc).unwrap()).unwrap();
    let (code, out) = validate("mi300x-8", &changed);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("/dev/dri/renderD128 is 226:140 in the spec but 226:128 on this host"),
        "{out}"
    );

    // Schema violations.
    let broken = dir.join("broken.json");
    std::fs::write(
        &broken,
        br#"{"kind": "amd.com/gpu", "devices": [{"name": "0"}]}"#,
    )
    .unwrap();
    let (code, out) = validate("mi300x-8", &broken);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("schema:") && out.contains("cdiVersion"),
        "{out}"
    );

    // A version too old for the content.
    doc["devices"][0]["containerEdits"]["deviceNodes"][1]["minor"] = 128.into();
    doc["cdiVersion"] = "0.3.0".into();
    let old = dir.join("old.json");
    std::fs::write(&old, serde_json::to_vec(&doc).unwrap()).unwrap();
    let (code, out) = validate("mi300x-8", &old);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("cdiVersion 0.3.0 is too old for this content: it needs 0.5.0"),
        "{out}"
    );

    // Unreadable: missing, and not JSON.
    assert_eq!(validate("mi300x-8", &dir.join("missing.json")).0, 2);
    let garbage = dir.join("garbage.json");
    std::fs::write(&garbage, b"{ not json").unwrap();
    assert_eq!(validate("mi300x-8", &garbage).0, 2);
}

#[test]
fn version_subcommand() {
    let out = std::process::Command::new(bin("amd-ctk"))
        .arg("version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(text(&out.stdout).starts_with("amd-ctk version "));
}

/// Every number in a JSON document, with its path.
fn numbers(v: &Value, path: &str, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Number(_) => out.push((path.to_string(), v.clone())),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| numbers(x, &format!("{path}[{i}]"), out)),
        Value::Object(o) => o
            .iter()
            .for_each(|(k, x)| numbers(x, &format!("{path}.{k}"), out)),
        _ => {}
    }
}

/// The JSON we emit survives readers that hold numbers as doubles (jq,
/// JavaScript): no number above 2^53 anywhere, unique ids are `"0x…"`
/// strings, and jq reads back exactly the ids `gpu list` prints.
#[test]
fn json_survives_jq() {
    if !umockdev_ready() || !require(have("jq"), "jq (apt-get install jq)") {
        return;
    }
    for fixture in FIXTURES {
        for args in [
            &["gpu", "list", "--format", "json"][..],
            &["cdi", "list", "--format", "json"],
            &[
                "cdi",
                "generate",
                "--output",
                "-",
                "--device-name-strategy",
                "index,uuid",
            ],
        ] {
            let out = ctk_under(fixture, args);
            if !out.status.success() {
                continue; // no GPU: nothing on stdout (see the golden files)
            }
            let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
            let mut found = Vec::new();
            numbers(&doc, "", &mut found);
            for (path, n) in found {
                assert!(
                    n.as_u64().is_some_and(|n| n <= 1 << 53)
                        || n.as_i64().is_some_and(|n| n.unsigned_abs() <= 1 << 53),
                    "{fixture} {args:?}: {path} = {n} is not exact in a double"
                );
            }
        }
        let json = ctk_under(fixture, &["gpu", "list", "--format", "json"]);
        if !json.status.success() {
            continue;
        }
        let mut jq = std::process::Command::new("jq")
            .args(["-r", ".gpus[] | .unique_id // \"N/A\""])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        jq.stdin.take().unwrap().write_all(&json.stdout).unwrap();
        let from_jq = text(&jq.wait_with_output().unwrap().stdout);
        let table = text(&ctk_under(fixture, &["gpu", "list"]).stdout);
        let from_table: Vec<&str> = table
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().nth(1))
            .collect();
        assert_eq!(
            from_jq.lines().collect::<Vec<_>>(),
            from_table,
            "{fixture}: ids through jq"
        );
        assert!(
            from_table.iter().any(|id| id.starts_with("0x"))
                || ["radeon-no-kfd", "no-amdgpu"].contains(fixture),
            "{fixture}: the comparison must see ids"
        );
    }
}

/// `amd-ctk` under `fixture` with its CDI record in `state` (not the
/// process-wide scratch one: each refresh test has its own).
fn ctk_state(fixture: &str, state: &Path, args: &[&str]) -> std::process::Output {
    under_fixture_recording(fixture, &bin("amd-ctk"), args, state)
}

/// Inode, size and mtime (ns): what changes when a file is rewritten.
fn identity(path: &Path) -> (u64, u64, i64, i64) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).unwrap();
    (m.ino(), m.size(), m.mtime(), m.mtime_nsec())
}

/// Generate with non-default options on one host, refresh on another: the
/// spec is what generate would write there with the same options; the
/// replaced one is kept; a second refresh rewrites nothing.
#[test]
fn refresh_regenerates_with_the_recorded_options() {
    if !umockdev_ready() {
        return;
    }
    let dir = scratch("refresh-options");
    let state = dir.join("state/cdi-specs.json");
    let spec = dir.join("cdi/amd.yaml");
    let strategy = ["--device-name-strategy", "index,uuid"];
    let out = ctk_state(
        "mi300x-8",
        &state,
        &[
            &["cdi", "generate", "--output", spec.to_str().unwrap()][..],
            &strategy,
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", transcript(&out));
    let record: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let key = spec.to_str().unwrap();
    assert_eq!(record["specs"][key]["format"], "yaml", "{record}");
    assert_eq!(
        record["specs"][key]["device-name-strategy"],
        serde_json::json!(["index", "uuid"])
    );
    let old = std::fs::read(&spec).unwrap();

    let out = ctk_state("radeon", &state, &["cdi", "refresh"]);
    assert!(out.status.success(), "{}", transcript(&out));
    assert!(
        text(&out.stdout).contains(&format!("Refreshed CDI spec: {key}")),
        "{}",
        transcript(&out)
    );
    let want = ctk_under(
        "radeon",
        &[
            &["cdi", "generate", "--output", "-", "--format", "yaml"][..],
            &strategy,
        ]
        .concat(),
    );
    assert_eq!(text(&std::fs::read(&spec).unwrap()), text(&want.stdout));
    let previous = dir.join("state/cdi-previous").join(
        key.trim_start_matches('/')
            .replace('%', "%25")
            .replace('/', "%2F"),
    );
    assert_eq!(
        std::fs::read(&previous).unwrap(),
        old,
        "the replaced spec is kept"
    );

    let before = identity(&spec);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let out = ctk_state("radeon", &state, &["cdi", "refresh"]);
    assert!(out.status.success(), "{}", transcript(&out));
    assert!(
        text(&out.stdout).contains("up to date"),
        "{}",
        transcript(&out)
    );
    assert_eq!(
        identity(&spec),
        before,
        "an unchanged spec is not rewritten"
    );
    let names: Vec<String> = std::fs::read_dir(spec.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["amd.yaml"],
        "no temp or backup file beside the spec"
    );
}

/// A host that never generated a spec (or only to stdout) gets none, and no
/// record either.
#[test]
fn refresh_without_a_generated_spec_creates_nothing() {
    if !umockdev_ready() {
        return;
    }
    let dir = scratch("refresh-none");
    let state = dir.join("state/cdi-specs.json");
    let out = ctk_state("mi300x-8", &state, &["cdi", "generate", "--output", "-"]);
    assert!(out.status.success());
    let out = ctk_state("mi300x-8", &state, &["cdi", "refresh"]);
    assert!(out.status.success(), "{}", transcript(&out));
    assert!(
        text(&out.stdout).contains("nothing to refresh"),
        "{}",
        transcript(&out)
    );
    assert!(
        !dir.join("state").exists(),
        "refresh created {}",
        state.display()
    );
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

/// A recorded spec that is now unparsable, another vendor's, edited by
/// hand, or deleted is left as it is (a deleted one is forgotten, never
/// created again); without GPUs every spec is kept and refresh exits 1.
#[test]
fn refresh_leaves_specs_that_are_not_ours_byte_identical() {
    if !umockdev_ready() {
        return;
    }
    let dir = scratch("refresh-foreign");
    let state = dir.join("state/cdi-specs.json");
    let specs: Vec<_> = ["garbage", "foreign", "edited", "deleted", "ours"]
        .iter()
        .map(|n| dir.join(format!("cdi/{n}.json")))
        .collect();
    for s in &specs {
        let out = ctk_state(
            "mi300x-8",
            &state,
            &["cdi", "generate", "--output", s.to_str().unwrap()],
        );
        assert!(out.status.success(), "{}", transcript(&out));
    }
    std::fs::write(&specs[0], b"{ not json").unwrap();
    std::fs::write(
        &specs[1],
        br#"{"cdiVersion":"0.5.0","kind":"other.com/gpu","devices":[]}"#,
    )
    .unwrap();
    let mut edited = std::fs::read_to_string(&specs[2]).unwrap();
    edited = edited.replacen(
        "\"kind\"",
        "\"annotations\": {\"admin\": \"x\"},\n  \"kind\"",
        1,
    );
    std::fs::write(&specs[2], &edited).unwrap();
    std::fs::remove_file(&specs[3]).unwrap();
    let kept: Vec<Vec<u8>> = specs[..3]
        .iter()
        .map(|s| std::fs::read(s).unwrap())
        .collect();
    let ours = std::fs::read(&specs[4]).unwrap();

    // No GPU: nothing is rewritten, not even our own spec; exit 1 says why.
    let out = ctk_state("no-amdgpu", &state, &["cdi", "refresh"]);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    assert!(
        text(&out.stderr).contains("the amdgpu driver is not loaded")
            && text(&out.stderr).contains("kept"),
        "{}",
        transcript(&out)
    );
    assert_eq!(std::fs::read(&specs[4]).unwrap(), ours);

    let out = ctk_state("radeon", &state, &["cdi", "refresh"]);
    assert!(out.status.success(), "{}", transcript(&out));
    for (s, k) in specs.iter().zip(&kept) {
        assert_eq!(&std::fs::read(s).unwrap(), k, "{}", s.display());
        assert!(
            text(&out.stderr).contains(&format!("{}: left alone", s.display())),
            "{}",
            transcript(&out)
        );
    }
    assert!(!specs[3].exists(), "a deleted spec is not created again");
    let record: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert!(
        record["specs"][specs[3].to_str().unwrap()].is_null(),
        "{record}"
    );
    let doc: Value = serde_json::from_slice(&std::fs::read(&specs[4]).unwrap()).unwrap();
    assert_eq!(
        doc["devices"].as_array().unwrap().len(),
        4,
        "ours follows the host"
    );
}

/// On fake hardware whose kfd and render nodes are 0660 root:109 (Ubuntu,
/// RHEL; `run-in-fakehw.sh --strict-nodes`), `cdi generate` gives the
/// render group as spec-level `additionalGids` with cdiVersion 0.7.0 (the
/// CDI reference's rule), says so on stderr naming `--no-additional-gids`,
/// and the spec validates against the official schema and `cdi validate`;
/// `--no-additional-gids` gives the 0.5.0 spec podman 4.3 reads.
#[test]
fn strict_nodes_give_additional_gids_and_cdi_070() {
    let ok = is_root() && have("umockdev-run") && have("unshare");
    if !require(
        ok,
        "root, umockdev-run and unshare (fake hardware namespace)",
    ) {
        return;
    }
    let work = scratch("cdi-strict");
    let script = r#"
        export SYSTEMD_DEVICE_VERIFY_SYSFS=0
        "$BIN/amd-ctk" cdi generate --output "$W/strict.json" 2> "$W/strict.err"
        "$BIN/amd-ctk" cdi validate --path "$W/strict.json"
        "$BIN/amd-ctk" cdi generate --no-additional-gids --output "$W/old.json" 2> "$W/old.err"
    "#;
    let out = fakehw_command("mi300x-8", "v1", &work.join("fakehw"), true)
        .args(["bash", "-euo", "pipefail", "-c", script])
        .env("W", &work)
        .env("BIN", bin("amd-ctk").parent().unwrap())
        .env_remove("AMD_CTK_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let read = |name: &str| std::fs::read_to_string(work.join(name)).unwrap();
    let strict: Value = serde_json::from_str(&read("strict.json")).unwrap();
    assert_eq!(strict["cdiVersion"], "0.7.0");
    assert_eq!(
        strict["containerEdits"]["additionalGids"],
        serde_json::json!([109])
    );
    assert_schema_valid(&official_schema(), &strict, "strict-node spec");
    let err = read("strict.err");
    assert!(
        err.lines().count() == 1 && err.contains("0.7.0") && err.contains("--no-additional-gids"),
        "{err}"
    );
    let old: Value = serde_json::from_str(&read("old.json")).unwrap();
    assert_eq!(old["cdiVersion"], "0.5.0");
    assert!(
        old["containerEdits"].get("additionalGids").is_none(),
        "{old}"
    );
    assert_eq!(read("old.err"), "");
}
