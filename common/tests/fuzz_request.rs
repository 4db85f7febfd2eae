//! Fuzzing the request parser (issue 9, item 10): 100 000 random
//! `AMD_VISIBLE_DEVICES` values, environments and PCI addresses per
//! property, 0 panics.
//!
//! Values are built from the parser's own vocabulary (digits, hex, ranges,
//! `GPU-`, `0x`, PCI addresses, keywords, separators, whitespace, non-ASCII)
//! so that most of them get deep into it, plus arbitrary bytes. Properties:
//! parsing never panics; a parsed request resolves against inventories of 0
//! to 9 GPUs without panicking, to indices that exist, each once; every
//! error names the variable and the value; a parsed PCI address prints as
//! something that parses back to it.

use amd_ctk_e2e::fuzzkit;

use amd_container_common::request::{find_request, Request, RequestVar};
use amd_container_common::{DeviceNode, Gpu, Inventory, PciAddress};
use fuzzkit::Gen;
use proptest::prelude::*;

mod support;

/// A node named after its minor (the request never looks at paths).
fn node(minor: u32) -> DeviceNode {
    support::dri_node(format!("/dev/dri/renderD{minor}"), minor, 0)
}

/// `n` GPUs on up to three PCI devices (partitions share an address), some
/// without a unique id.
fn inventory(n: usize) -> Inventory {
    let pcis = ["0000:05:00.0", "0000:c1:00.0", "0001:0a:00.0"];
    Inventory {
        kfd: None,
        gpus: (0..n)
            .map(|i| Gpu {
                index: i,
                pci_address: pcis[i % 3].parse().expect("valid"),
                partition: (i < 3).then_some(i as u32),
                unique_id: (i % 4 != 3).then_some(0xaa00 + i as u64),
                card: Some(node(i as u32)),
                render: Some(node(128 + i as u32)),
                compute_partition: None,
                memory_partition: None,
            })
            .collect(),
    }
}

const WORDS: &[&str] = &[
    "all",
    "ALL",
    "none",
    "void",
    "Void",
    "gpu-",
    "GPU-",
    "0x",
    "0X",
    "GPU-0x",
    "0000:05:00.0",
    "c1:00.0",
    "0001:0a:00.0",
    "ffff:ff:1f.7",
    "0x1c2b3a4d5e6f7081",
    ",",
    ",",
    ",",
    "-",
    "-",
    ":",
    ".",
    " ",
    "\t",
    "\n",
    "\0",
    "é",
    "１",
    "\u{200b}",
];

/// An `AMD_VISIBLE_DEVICES` value.
fn value(g: &mut Gen) -> String {
    if g.one_in(20) {
        return String::from_utf8_lossy(&g.bytes(24)).into_owned();
    }
    let mut s = String::new();
    for _ in 0..g.below(10) {
        match g.below(9) {
            0 | 1 => s.push_str(&g.below(20).to_string()),
            2 => s.push_str(&g.next_u64().to_string()),
            3 => s.push_str(&format!("{:#x}", g.next_u64())),
            4 => s.push_str(&format!("{:x}", g.next_u64() >> g.below(64))),
            5..=7 => s.push_str(g.pick::<&str>(WORDS)),
            _ => s.push(char::from_u32(g.next_u64() as u32 % 0x11_0000).unwrap_or('x')),
        }
    }
    s
}

proptest! {
    #![proptest_config(fuzzkit::config())]

    #[test]
    fn parse_and_resolve_never_panic(seed in any::<u64>()) {
        let mut g = Gen::new(seed);
        let v = value(&mut g);
        let n = g.below(10);
        let var = RequestVar { name: "AMD_VISIBLE_DEVICES", value: &v };
        match Request::parse(var.name, var.value) {
            Ok(request) => match request.resolve(&var, &inventory(n)) {
                Ok(selection) => {
                    let mut seen = vec![false; n];
                    for &i in &selection.0 {
                        prop_assert!(i < n, "{v:?} gave index {i} of {n}");
                        prop_assert!(!seen[i], "{v:?} gave index {i} twice");
                        seen[i] = true;
                    }
                    if !request.is_gpu() {
                        prop_assert!(selection.0.is_empty(), "{v:?}");
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    prop_assert!(msg.starts_with(&format!("AMD_VISIBLE_DEVICES={v}: ")), "{msg}");
                }
            },
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(msg.starts_with(&format!("AMD_VISIBLE_DEVICES={v}: ")), "{msg}");
            }
        }
    }

    #[test]
    fn find_request_never_panics(seed in any::<u64>()) {
        let mut g = Gen::new(seed);
        let env: Vec<String> = (0..g.below(6))
            .map(|_| match g.below(6) {
                0..=2 => format!("AMD_VISIBLE_DEVICES={}", value(&mut g)),
                3 => format!("DOCKER_RESOURCE_GPU={}", value(&mut g)),
                4 => value(&mut g),
                _ => g.pick(&["=", "AMD_VISIBLE_DEVICES", "AMD_VISIBLE_DEVICES==", ""]).to_string(),
            })
            .collect();
        let swarm = *g.pick(&["", "DOCKER_RESOURCE_GPU", "=", "AMD_VISIBLE_DEVICES"]);
        if let Some(found) = find_request(env.iter().map(String::as_str), swarm) {
            prop_assert!(
                env.iter().any(|e| e.strip_prefix(found.name)
                    .and_then(|r| r.strip_prefix('=')) == Some(found.value)),
                "{env:?}: {found:?}"
            );
            let _ = Request::parse(found.name, found.value);
        }
    }

    #[test]
    fn pci_addresses_parse_or_fail_cleanly(seed in any::<u64>()) {
        let mut g = Gen::new(seed);
        let s = match g.below(3) {
            0 => value(&mut g),
            _ => {
                let mut s = format!(
                    "{:x}:{:x}:{:x}.{:x}",
                    g.next_u64() >> g.below(64),
                    g.next_u64() >> g.below(64),
                    g.next_u64() >> g.below(64),
                    g.next_u64() >> g.below(64)
                );
                if g.one_in(2) {
                    let mut b = s.into_bytes();
                    g.mutate(&mut b);
                    s = String::from_utf8_lossy(&b).into_owned();
                }
                s
            }
        };
        if let Ok(a) = s.parse::<PciAddress>() {
            prop_assert_eq!(a.to_string().parse::<PciAddress>().ok(), Some(a), "{:?}", s);
        }
    }
}
