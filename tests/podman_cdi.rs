//! podman 4.3 consumes a spec written by `amd-ctk cdi generate` on fake
//! hardware: `--device amd.com/gpu=N` gives the container exactly that GPU's
//! nodes plus /dev/kfd, and the device cgroup lets it open them.

use amd_ctk_e2e::*;

fn prerequisites() -> bool {
    require(is_root(), "root (mount namespaces, podman)")
        && require(
            have("podman") && have("runc"),
            "podman and runc (apt-get install podman runc)",
        )
}

#[test]
fn podman_uses_generated_cdi_spec_for_one_gpu_and_for_all() {
    if !prerequisites() {
        return;
    }
    let work = scratch("podman-cdi");
    let script = format!(
        r#"{PODMAN_SETUP}
private_etc
AMD_CTK_CDI_STATE="$W/cdi-specs.json" SYSTEMD_DEVICE_VERIFY_SYSFS=0 "$BIN/amd-ctk" cdi generate --output /etc/cdi/amd.json
bb_image
probe='for n in /dev/kfd /dev/dri/card1 /dev/dri/renderD128 /dev/dri/renderD129; do
         cat $n 2>&1 | sed "s|^|probe |"; done; ls /dev/dri | sed "s|^|dri |"'
echo "== gpu=0"
podman run --rm --network none --pids-limit 0 --device amd.com/gpu=0 localhost/bb:test sh -c "$probe"
echo "== gpu=all"
podman run --rm --network none --pids-limit 0 --device amd.com/gpu=all localhost/bb:test sh -c "ls /dev/dri | sed 's|^|dri |'"
echo "== none"
podman run --rm --network none --pids-limit 0 localhost/bb:test sh -c "ls /dev/dri 2>&1 | sed 's|^|dri |'; cat /dev/kfd 2>&1 | sed 's|^|probe |'"
"#
    );
    let out = fakehw_sh("mi300x-8", "v1", &work, &script);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    let section = |name: &str| -> Vec<String> {
        let start = stdout
            .find(&format!("== {name}\n"))
            .unwrap_or_else(|| panic!("no section {name}:\n{stdout}"));
        stdout[start..]
            .lines()
            .skip(1)
            .take_while(|l| !l.starts_with("== "))
            .map(str::to_string)
            .collect()
    };
    let gpu0 = section("gpu=0");
    for allowed in ["/dev/kfd", "/dev/dri/card1", "/dev/dri/renderD128"] {
        let line = format!("probe cat: can't open '{allowed}': No such device or address");
        assert!(
            gpu0.contains(&line),
            "{allowed} must be present and allowed:\n{stdout}"
        );
    }
    assert!(
        gpu0.contains(
            &"probe cat: can't open '/dev/dri/renderD129': No such file or directory".to_string()
        ),
        "GPU 1's node must be absent:\n{stdout}"
    );
    let dri = |lines: &[String]| -> Vec<String> {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix("dri "))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(dri(&gpu0), ["card1", "renderD128"]);
    let mut all = dri(&section("gpu=all"));
    all.sort();
    let mut expected: Vec<String> = (1..=8)
        .map(|i| format!("card{i}"))
        .chain((128..136).map(|i| format!("renderD{i}")))
        .collect();
    expected.sort();
    assert_eq!(all, expected);
    let none = section("none");
    assert!(
        none.iter().any(|l| l.contains("No such file or directory")),
        "{stdout}"
    );
    assert!(
        !none
            .iter()
            .any(|l| l.starts_with("dri card") || l.starts_with("dri render")),
        "{stdout}"
    );
}
