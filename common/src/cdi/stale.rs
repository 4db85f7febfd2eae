//! Is a CDI spec still true of this host? Compares a spec with the one the
//! current hardware would give.

use super::generate::{generate, GenerateOptions, NameStrategy};
use super::spec::{CdiContainerEdits, Spec};
use crate::hardware::Inventory;
use std::fmt;

/// One way in which a spec and the host disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discrepancy {
    MissingDevice(String),
    ExtraDevice(String),
    MissingNode {
        device: String,
        path: String,
    },
    ExtraNode {
        device: String,
        path: String,
    },
    ChangedNode {
        device: String,
        path: String,
        spec: String,
        host: String,
    },
}

impl fmt::Display for Discrepancy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Discrepancy::MissingDevice(d) => write!(f, "{d} is on this host but not in the spec"),
            Discrepancy::ExtraDevice(d) => write!(f, "{d} is in the spec but not on this host"),
            Discrepancy::MissingNode { device, path } => {
                write!(f, "{device}: {path} is on this host but not in the spec")
            }
            Discrepancy::ExtraNode { device, path } => {
                write!(f, "{device}: {path} is in the spec but not on this host")
            }
            Discrepancy::ChangedNode {
                device,
                path,
                spec,
                host,
            } => {
                write!(
                    f,
                    "{device}: {path} is {spec} in the spec but {host} on this host"
                )
            }
        }
    }
}

fn is_index_name(name: &str) -> bool {
    name == "all" || name.bytes().all(|b| b.is_ascii_digit())
}

fn majmin(major: Option<i64>, minor: Option<i64>) -> String {
    let part = |v: Option<i64>| v.map_or("?".to_string(), |v| v.to_string());
    format!("{}:{}", part(major), part(minor))
}

fn compare_edits(
    device: &str,
    spec: &CdiContainerEdits,
    host: &CdiContainerEdits,
    out: &mut Vec<Discrepancy>,
) {
    for h in &host.device_nodes {
        match spec.device_nodes.iter().find(|s| s.path == h.path) {
            None => out.push(Discrepancy::MissingNode {
                device: device.into(),
                path: h.path.clone(),
            }),
            // A spec may leave major:minor out (the runtime then stats the host node).
            Some(s) if s.major.is_some() && (s.major, s.minor) != (h.major, h.minor) => {
                out.push(Discrepancy::ChangedNode {
                    device: device.into(),
                    path: h.path.clone(),
                    spec: majmin(s.major, s.minor),
                    host: majmin(h.major, h.minor),
                })
            }
            Some(_) => {}
        }
    }
    for s in &spec.device_nodes {
        if !host.device_nodes.iter().any(|h| h.path == s.path) {
            out.push(Discrepancy::ExtraNode {
                device: device.into(),
                path: s.path.clone(),
            });
        }
    }
}

/// Everything in which `spec` differs from what `inventory` gives. Devices
/// named by unique id are expected only if the spec names any that way.
pub fn compare_with_hardware(spec: &Spec, inventory: &Inventory) -> Vec<Discrepancy> {
    let (vendor, class) = spec.kind.split_once('/').unwrap_or((&spec.kind, ""));
    let options = GenerateOptions {
        vendor: vendor.into(),
        class: class.into(),
        strategies: vec![NameStrategy::Index, NameStrategy::Uuid],
        ..Default::default()
    };
    let host = match generate(inventory, &options) {
        Ok(h) => h,
        // The kind itself is invalid: the schema/name check reports that.
        Err(_) => return Vec::new(),
    };
    let uses_uuid = spec.devices.iter().any(|d| !is_index_name(&d.name));
    let qualified = |name: &str| format!("{}={name}", spec.kind);
    let mut out = Vec::new();
    compare_edits(
        &spec.kind,
        &spec.container_edits,
        &host.container_edits,
        &mut out,
    );
    for h in &host.devices {
        match spec.devices.iter().find(|d| d.name == h.name) {
            Some(d) => compare_edits(
                &qualified(&d.name),
                &d.container_edits,
                &h.container_edits,
                &mut out,
            ),
            None if uses_uuid || is_index_name(&h.name) => {
                out.push(Discrepancy::MissingDevice(qualified(&h.name)))
            }
            None => {}
        }
    }
    for d in &spec.devices {
        if !host.devices.iter().any(|h| h.name == d.name) {
            out.push(Discrepancy::ExtraDevice(qualified(&d.name)));
        }
    }
    out
}
