//! Discovery, CDI and the hook on the fixtures built from real captures
//! (tests/fixtures/captures/*/SOURCE.md: KFD topologies of 8× MI300X in CPX,
//! 8× MI308X in CPX across two PCI domains, MI300X in DPX, 8× MI210 with and
//! without a BMC, a Vega10).
//!
//! The oracle is the capture itself, read here independently of the product's
//! parser: rocm-smi and amd-smi give one index per KFD GPU node, ordered by
//! PCI domain and `location_id`, in which real kernels put the partition
//! number (its function bits). `amd-ctk gpu list` must list exactly those
//! nodes in that order, each with its own render node; the hook under real
//! runc must give exactly what an index, a unique id or a PCI address names.

use amd_ctk_e2e::probe::Probe;
use amd_ctk_e2e::runc::{ready, Cgroup, Session};
use amd_ctk_e2e::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// One KFD GPU node of a fixture, from its `topology/nodes/N/properties`.
#[derive(Debug, Clone)]
struct KfdGpu {
    domain: u32,
    location_id: u32,
    render_minor: u32,
    unique_id: Option<u64>,
}

impl KfdGpu {
    /// bus and device: the PCI function a GPU's partitions share.
    fn slot(&self) -> (u32, u32) {
        (self.domain, self.location_id >> 3)
    }
}

/// The fixture's KFD GPU nodes in rocm-smi's order.
fn kfd_gpus(name: &str) -> Vec<KfdGpu> {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    let mut gpus = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("A: topology/nodes/") else {
            continue;
        };
        let Some((_, value)) = rest.split_once("/properties=") else {
            continue;
        };
        let props: BTreeMap<&str, u64> = value
            .split("\\n")
            .filter_map(|l| l.split_once(' '))
            .filter_map(|(k, v)| Some((k, v.trim().parse().ok()?)))
            .collect();
        let minor = props.get("drm_render_minor").copied().unwrap_or(0);
        if minor == 0 {
            continue; // a CPU node
        }
        gpus.push(KfdGpu {
            domain: props.get("domain").copied().unwrap_or(0) as u32,
            location_id: props["location_id"] as u32,
            render_minor: minor as u32,
            unique_id: props.get("unique_id").copied().filter(|&u| u != 0),
        });
    }
    gpus.sort_by_key(|g| (g.domain, g.location_id));
    gpus
}

fn gpu_list(name: &str) -> (Vec<Value>, String) {
    let out = ctk_under(name, &["gpu", "list", "--format", "json"]);
    assert!(out.status.success(), "{name}: {}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    (v["gpus"].as_array().unwrap().clone(), text(&out.stderr))
}

#[test]
fn every_kfd_gpu_node_once_in_rocm_smi_order_with_its_own_nodes() {
    if !umockdev_ready() {
        return;
    }
    let counts = [
        ("real-mi300x-cpx", 63),
        ("real-mi300x-cpx-dkms", 63),
        ("real-mi308x-cpx", 32),
        ("real-mi300x-dpx", 8),
        ("real-mi210-8", 8),
        ("real-mi210-8-bmc", 8),
        ("real-vega10", 1),
    ];
    assert_eq!(counts.len(), REAL_FIXTURES.len());
    for (name, count) in counts {
        let expected = kfd_gpus(name);
        assert_eq!(
            expected.len(),
            count,
            "{name}: KFD GPU nodes in the capture"
        );
        let (gpus, stderr) = gpu_list(name);
        assert!(
            !stderr.contains("WARN"),
            "{name}: discovery warned: {stderr}"
        );
        assert_eq!(gpus.len(), count, "{name}: GPUs listed");
        let mut per_slot: BTreeMap<(u32, u32), usize> = BTreeMap::new();
        for k in &expected {
            *per_slot.entry(k.slot()).or_default() += 1;
        }
        let mut renders = BTreeSet::new();
        for (i, (gpu, kfd)) in gpus.iter().zip(&expected).enumerate() {
            let what = format!("{name} GPU {i}: {gpu}");
            assert_eq!(gpu["index"], i, "{what}");
            assert_eq!(gpu["render"]["minor"], kfd.render_minor, "{what}");
            assert!(
                renders.insert(kfd.render_minor),
                "{what}: render node twice"
            );
            let partitioned = per_slot[&kfd.slot()] > 1;
            let (pci_location, partition) = if partitioned {
                (kfd.location_id & !7, Some(kfd.location_id & 7))
            } else {
                (kfd.location_id, None)
            };
            let pci = format!(
                "{:04x}:{:02x}:{:02x}.{:x}",
                kfd.domain,
                pci_location >> 8,
                (pci_location >> 3) & 0x1f,
                pci_location & 7
            );
            assert_eq!(gpu["pci_address"], pci.as_str(), "{what}");
            assert_eq!(gpu["partition"], serde_json::json!(partition), "{what}");
            let uid = kfd.unique_id.map(|u| format!("{u:#x}"));
            assert_eq!(gpu["unique_id"], serde_json::json!(uid), "{what}");
            assert!(gpu["card"]["path"].is_string(), "{what}: card node");
        }
    }
}

/// CDI on the real captures: one device per KFD GPU node, each with its own
/// render node, and the golden outputs.
#[test]
fn golden_outputs_on_real_captures() {
    if !umockdev_ready() {
        return;
    }
    for name in REAL_FIXTURES {
        for (file, args) in [
            ("gpu-list.txt", &["gpu", "list"][..]),
            ("cdi-list.txt", &["cdi", "list"][..]),
            (
                "cdi-generate.json",
                &["cdi", "generate", "--output", "-"][..],
            ),
        ] {
            let out = ctk_under(name, args);
            assert!(
                out.status.success(),
                "{name} {args:?}: {}",
                text(&out.stderr)
            );
            assert_golden(&format!("{name}/{file}"), &text(&out.stdout));
        }
        let out = ctk_under(name, &["cdi", "generate", "--output", "-"]);
        let spec: Value = serde_json::from_slice(&out.stdout).unwrap();
        let devices = spec["devices"].as_array().unwrap();
        let expected = kfd_gpus(name);
        let render_of = |d: &Value| -> Vec<String> {
            d["containerEdits"]["deviceNodes"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|n| n["path"].as_str())
                .filter(|p| p.contains("renderD"))
                .map(str::to_string)
                .collect()
        };
        for (i, kfd) in expected.iter().enumerate() {
            let dev = devices
                .iter()
                .find(|d| d["name"] == i.to_string().as_str())
                .unwrap_or_else(|| panic!("{name}: no CDI device {i}"));
            assert_eq!(
                render_of(dev),
                vec![format!("/dev/dri/renderD{}", kfd.render_minor)],
                "{name}: CDI device {i}"
            );
        }
    }
}

/// The committed fixtures are what `gen.py` makes of the captures and of its
/// rules today (it checks the filled-in minors against the captured ones):
/// neither can drift from the other.
#[test]
fn fixtures_are_what_gen_py_makes() {
    let out_dir = scratch("gen-py");
    let out = std::process::Command::new("python3")
        .arg(repo().join("tests/fixtures/gen.py"))
        .arg(&out_dir)
        .output()
        .expect("python3");
    assert!(out.status.success(), "gen.py: {}", text(&out.stderr));
    let mut compared = 0;
    for entry in std::fs::read_dir(repo().join("tests/fixtures")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "umockdev") {
            let name = path.file_name().unwrap();
            let made = std::fs::read(out_dir.join(name))
                .unwrap_or_else(|e| panic!("gen.py did not make {name:?}: {e}"));
            assert!(
                made == std::fs::read(&path).unwrap(),
                "{} differs from what gen.py makes: run python3 tests/fixtures/gen.py",
                path.display()
            );
            compared += 1;
        }
    }
    assert!(compared >= 13, "only {compared} fixtures compared");
}

// ---------------------------------------------------------------------------
// The hook under real runc on the real captures.

/// The (card, render) minors of the fixture's GPUs at `indices`, from
/// `amd-ctk gpu list`, checked against the capture's render minors above.
fn nodes_of(name: &str, indices: &[usize]) -> Vec<(u32, u32)> {
    let (gpus, _) = gpu_list(name);
    indices
        .iter()
        .map(|&i| {
            let minor = |k: &str| gpus[i][k]["minor"].as_u64().unwrap() as u32;
            (minor("card"), minor("render"))
        })
        .collect()
}

/// Runs a container with `AMD_VISIBLE_DEVICES=value` and asserts it sees
/// exactly /dev/kfd and the nodes of the GPUs at `indices`, all allowed.
fn selects_exactly(s: &Session, name: &str, value: &str, indices: &[usize]) {
    let gpus = nodes_of(name, indices);
    let mut paths = vec!["/dev/kfd".to_string()];
    for (c, r) in &gpus {
        paths.push(format!("/dev/dri/card{c}"));
        paths.push(format!("/dev/dri/renderD{r}"));
    }
    let mut b = s.gpu_bundle("sel", value);
    b.probe(&paths.iter().map(String::as_str).collect::<Vec<_>>());
    let out = s.run(&b);
    let what = format!("{name} AMD_VISIBLE_DEVICES={value}");
    assert!(out.success(), "{what}: {out}");
    let probe = Probe::parse(&out.stdout);
    let expected: BTreeSet<String> = paths.iter().cloned().collect();
    assert_eq!(
        probe.paths(),
        expected.into_iter().collect::<Vec<_>>(),
        "{what}: {out}"
    );
    for p in &paths {
        assert_eq!(probe.open(p), ENXIO, "{what}: {p} allowed: {out}");
    }
}

fn uid_of(name: &str, index: usize) -> String {
    kfd_gpus(name)[index]
        .unique_id
        .map(|u| format!("{u:#x}"))
        .unwrap()
}

on_v1_and_v2!(
    /// 8× MI300X in CPX (63 partitions): index 1 is 05:00.0's partition 1
    /// (rocm-smi's GPU 1), index 8 is 27:00.0's first partition, the unique
    /// id that 27:00.0's partitions share gives all eight, and the PCI
    /// address of the last GPU (seven partitions: the kernel ran out of card
    /// minors) gives those seven.
    cpx_index_unique_id_and_pci_select_what_rocm_smi_names => cpx_scenario
);
fn cpx_scenario(cg: Cgroup) {
    let name = "real-mi300x-cpx";
    let s = Session::new("realcpx", name, cg);
    selects_exactly(&s, name, "1", &[1]);
    selects_exactly(&s, name, "8", &[8]);
    selects_exactly(&s, name, "62", &[62]);
    selects_exactly(&s, name, &uid_of(name, 8), &(8..16).collect::<Vec<_>>());
    selects_exactly(&s, name, "0000:e5:00.0", &(56..63).collect::<Vec<_>>());
}

on_v1_and_v2!(
    /// MI308X in CPX across PCI domains 0 and 1 (partitions on
    /// `amdgpu_xcp.N` with inactive ones between them), and MI300X in DPX
    /// (a later kernel: the partition's KFD node has its own unique id).
    mi308x_domains_and_dpx_select_what_they_name => domains_scenario
);
fn domains_scenario(cg: Cgroup) {
    let name = "real-mi308x-cpx";
    let s = Session::new("realmi308", name, cg);
    selects_exactly(&s, name, "0001:0b:00.0", &[16, 17, 18, 19]);
    selects_exactly(&s, name, "17", &[17]);
    let name = "real-mi300x-dpx";
    let s = Session::new("realdpx", name, cg);
    selects_exactly(&s, name, "1", &[1]);
    selects_exactly(&s, name, &uid_of(name, 3), &[3]);
    selects_exactly(&s, name, "0000:27:00.0", &[2, 3]);
}
