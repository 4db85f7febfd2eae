//! A container with a user namespace: mknod is refused there, so the hook
//! bind-mounts the host nodes (created as the container's root, since its /dev
//! belongs to its user namespace) and they are usable, on cgroup v1 and v2.

use amd_ctk_e2e::*;

const SCRIPT: &str = r#"
"$REPO/tests/fakehw/make-bundle.sh" "$W/b" sh -c 'for n in /dev/kfd /dev/dri/renderD128 /dev/dri/renderD129; do cat $n 2>&1; done; ls /dev/dri' >/dev/null
chown -R 100000:100000 "$W/b/rootfs"
printf '[hook]\nlog-file = "%s/hook.log"\n' "$W" > "$W/config.toml"
python3 - "$W/b/config.json" "$BIN/amd-container-hook" "$W/config.toml" <<'PY'
import json, sys
path, hook, conf = sys.argv[1:]
c = json.load(open(path))
c["process"]["env"].append("AMD_VISIBLE_DEVICES=0")
c["linux"]["namespaces"].append({"type": "user"})
c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
# sysfs cannot be mounted from a user namespace here: bind the host's, as rootless runc does.
c["mounts"] = [m for m in c["mounts"] if m["destination"] not in ("/sys", "/sys/fs/cgroup")]
c["mounts"].append({"destination": "/sys", "type": "none", "source": "/sys",
                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
c["hooks"] = {"prestart": [{"path": hook, "args": ["amd-container-hook", "prestart"],
                            "env": ["SYSTEMD_DEVICE_VERIFY_SYSFS=0", "AMD_CTK_CONFIG=" + conf]}]}
json.dump(c, open(path, "w"))
PY
cd "$W/b"
runc run "userns-$$"
"#;

fn run(cgroup: &str) {
    if !require(is_root(), "root (mount and user namespaces, runc)")
        || !require(have("runc"), "runc")
    {
        return;
    }
    let work = scratch(&format!("userns-{cgroup}"));
    let out = fakehw_sh("mi300x-8", cgroup, &work, SCRIPT);
    let stdout = text(&out.stdout);
    let log = std::fs::read_to_string(work.join("hook.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}\nlog:\n{log}",
        text(&out.stderr)
    );
    for allowed in ["/dev/kfd", "/dev/dri/renderD128"] {
        assert!(
            stdout.contains(&format!(
                "cat: can't open '{allowed}': No such device or address"
            )),
            "{allowed} must be there and allowed:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("cat: can't open '/dev/dri/renderD129': No such file or directory"),
        "{stdout}"
    );
    let dri: Vec<&str> = stdout.lines().filter(|l| !l.starts_with("cat:")).collect();
    assert_eq!(dri, ["card1", "renderD128"], "{stdout}");
    assert!(log.contains("bind-mounted for a user namespace"), "{log}");
}

#[test]
fn userns_container_gets_bind_mounted_nodes_cgroup_v1() {
    run("v1");
}

#[test]
fn userns_container_gets_bind_mounted_nodes_cgroup_v2() {
    run("v2");
}
