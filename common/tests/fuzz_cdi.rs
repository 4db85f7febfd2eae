//! Fuzzing the CDI reader (issue 9, item 10): 100 000 random documents per
//! format, 0 panics.
//!
//! Documents are real specs (as `cdi::generate` makes them for 0 to 4 GPUs)
//! and random ones built from the spec's vocabulary, in JSON and in YAML,
//! half of them then mutated byte-wise, plus raw bytes and deep nesting.
//! Each goes through what `amd-ctk cdi validate` does with it: the bounded
//! reader, then for a spec the name checks, the minimal-version rule and the
//! comparison with an inventory. Properties: nothing panics; a generated
//! spec reads back equal; a document nested deeper than the limit is refused
//! as too deep.

use amd_ctk_e2e::fuzzkit;

use amd_container_common::cdi::{
    self, compare_with_hardware, minimum_version, read_spec, validate_device_name, validate_kind,
    Format, GenerateOptions, NameStrategy, ReadError, MAX_DEPTH,
};
use amd_container_common::{DeviceNode, Inventory};
use fuzzkit::Gen;
use proptest::prelude::*;
use serde_json::Value;
use std::sync::OnceLock;

mod support;

fn inventory(n: usize) -> Inventory {
    Inventory {
        kfd: Some(DeviceNode {
            major: 238,
            minor: 0,
            ..support::dri_node("/dev/kfd", 0, 44)
        }),
        gpus: (0..n)
            .map(|i| {
                let pci = format!("0000:{:02x}:00.0", 5 + i);
                let unique_id = (i != 2).then_some(0x1c2b_0000 + i as u64);
                support::gpu(i, &pci, None, unique_id, 44)
            })
            .collect(),
    }
}

const KEYS: &[&str] = &[
    "cdiVersion",
    "kind",
    "annotations",
    "devices",
    "name",
    "containerEdits",
    "env",
    "deviceNodes",
    "path",
    "hostPath",
    "type",
    "major",
    "minor",
    "permissions",
    "uid",
    "gid",
    "mounts",
    "containerPath",
    "options",
    "hooks",
    "hookName",
    "args",
    "timeout",
    "additionalGids",
    "intelRdt",
    "netDevices",
];

const WORDS: &[&str] = &[
    "0.3.0",
    "0.5.0",
    "0.6.0",
    "1.0.0",
    "1.1.0",
    "amd.com/gpu",
    "amd.com/gpu.partition",
    "vendor/x",
    "all",
    "0",
    "0x1a",
    "/dev/kfd",
    "/dev/dri/card1",
    "/dev/dri/renderD128",
    "c",
    "rwm",
    "A=1",
    "bind",
];

/// Inventories of 0 to 4 GPUs, built once.
fn inventories() -> &'static [Inventory] {
    static ALL: OnceLock<Vec<Inventory>> = OnceLock::new();
    ALL.get_or_init(|| (0..5).map(inventory).collect())
}

/// Real specs, as `cdi::generate` makes them for 1 and 2 GPUs (small is
/// enough: splices make them longer) with every naming strategy and a few
/// kinds, as JSON and YAML text, built once.
fn real_specs(format: Format) -> &'static [Vec<u8>] {
    static ALL: OnceLock<[Vec<Vec<u8>>; 2]> = OnceLock::new();
    let all = ALL.get_or_init(|| {
        let (mut json, mut yaml) = (Vec::new(), Vec::new());
        for inv in &inventories()[1..3] {
            for strategies in [
                vec![NameStrategy::Index],
                vec![NameStrategy::Uuid],
                vec![NameStrategy::Index, NameStrategy::Uuid],
            ] {
                for (vendor, class) in [("amd.com", "gpu"), ("a.b", "gpu.partition")] {
                    let options = GenerateOptions {
                        vendor: vendor.into(),
                        class: class.into(),
                        strategies: strategies.clone(),
                        ..Default::default()
                    };
                    let spec = cdi::generate(inv, &options).expect("generates");
                    json.push(serde_json::to_vec(&spec).expect("serializes"));
                    yaml.push(
                        serde_yaml_ng::to_string(&spec)
                            .expect("serializes")
                            .into_bytes(),
                    );
                }
            }
        }
        [json, yaml]
    });
    match format {
        Format::Json => &all[0],
        Format::Yaml => &all[1],
    }
}

/// A random document from the spec's vocabulary, maybe with the fields a
/// spec must have.
fn random_spec(g: &mut Gen) -> Value {
    let mut v = g.json(KEYS, WORDS, 4);
    if g.one_in(2) {
        Gen::put(&mut v, &["cdiVersion"], Value::from(*g.pick(WORDS)));
        Gen::put(&mut v, &["kind"], Value::from(*g.pick(WORDS)));
        let devices = g.json(KEYS, WORDS, 3);
        Gen::put(&mut v, &["devices"], Value::Array(vec![devices]));
    }
    v
}

/// An input in `format`: a real spec mutated byte-wise (a fuzzer's corpus
/// and mutator), a random document, raw bytes, or deep nesting.
fn text(g: &mut Gen, format: Format) -> String {
    let bytes = match g.below(20) {
        0..=9 => {
            let mut b = g.pick(real_specs(format)).clone();
            if g.below(4) != 0 {
                g.mutate(&mut b);
            }
            b
        }
        10..=16 => {
            let v = random_spec(g);
            let mut b = match format {
                Format::Json => serde_json::to_vec(&v).unwrap_or_default(),
                Format::Yaml => serde_yaml_ng::to_string(&v)
                    .unwrap_or_default()
                    .into_bytes(),
            };
            if g.one_in(2) {
                g.mutate(&mut b);
            }
            b
        }
        17 | 18 => g.bytes(96),
        _ => {
            // Deep nesting, around the limit the reader must enforce.
            let depth = MAX_DEPTH - 2 + g.below(5);
            let (open, close) = *g.pick(&[("[", "]"), ("{a: ", "}"), ("{\"a\":", "}"), ("- ", "")]);
            format!("{}1{}", open.repeat(depth), close.repeat(depth)).into_bytes()
        }
    };
    String::from_utf8_lossy(&bytes).into_owned()
}

/// What `amd-ctk cdi validate` does after reading, minus the schema.
fn check(spec: &cdi::Spec, n: usize) {
    for d in &spec.devices {
        let _ = validate_device_name(&d.name).map_err(|e| e.to_string());
    }
    if let Some((vendor, class)) = spec.kind.split_once('/') {
        let _ = validate_kind(vendor, class).map_err(|e| e.to_string());
    }
    let _ = minimum_version(spec);
    for d in compare_with_hardware(spec, &inventories()[n]) {
        let _ = d.to_string();
    }
}

fn read_one(seed: u64, format: Format) -> Result<(), TestCaseError> {
    let mut g = Gen::new(seed);
    let input = text(&mut g, format);
    match read_spec(&input, format) {
        Ok(spec) => check(&spec, g.below(5)),
        Err(ReadError::TooDeep { limit, .. }) => prop_assert_eq!(limit, MAX_DEPTH),
        Err(e) => {
            let _ = e.to_string();
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(fuzzkit::config())]

    #[test]
    fn json_documents_never_panic(seed in any::<u64>()) {
        read_one(seed, Format::Json)?;
    }

    #[test]
    fn yaml_documents_never_panic(seed in any::<u64>()) {
        read_one(seed, Format::Yaml)?;
    }
}

/// Not random: a generated spec reads back equal in both formats.
#[test]
fn generated_specs_read_back() {
    for n in 1..5 {
        let options = GenerateOptions {
            vendor: "amd.com".into(),
            class: "gpu".into(),
            strategies: vec![NameStrategy::Index, NameStrategy::Uuid],
            ..Default::default()
        };
        let spec = cdi::generate(&inventory(n), &options).expect("generates");
        let json = serde_json::to_string(&spec).expect("serializes");
        let yaml = serde_yaml_ng::to_string(&spec).expect("serializes");
        assert_eq!(read_spec(&json, Format::Json).expect("reads"), spec);
        assert_eq!(read_spec(&yaml, Format::Yaml).expect("reads"), spec);
        assert!(compare_with_hardware(&spec, &inventory(n)).is_empty());
    }
}
