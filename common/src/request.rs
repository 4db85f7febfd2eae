//! The device request: `AMD_VISIBLE_DEVICES` (or a Swarm `DOCKER_RESOURCE_*`
//! variable), parsed, then resolved against an [`Inventory`].
//!
//! An orchestrator's assignment (the Swarm variable) bounds the request: an
//! `AMD_VISIBLE_DEVICES` beside it (an image's `ENV`, say) may narrow it,
//! never widen it ([`check_assignment`] refuses, naming both).

use crate::hardware::{Gpu, Inventory, PciAddress};
use std::fmt;

/// The variable a container sets to ask for GPUs.
pub const VISIBLE_DEVICES: &str = "AMD_VISIBLE_DEVICES";
/// The Swarm generic-resource variables read when `AMD_VISIBLE_DEVICES` is
/// absent: any `DOCKER_RESOURCE_*`, as upstream's runtime reads them (its docs
/// use `DOCKER_RESOURCE_AMD_GPU`; Docker names the variable after the kind).
pub const DEFAULT_SWARM_RESOURCE: &str = "DOCKER_RESOURCE_*";

/// Does the variable `name` match the configured Swarm setting: an exact name,
/// or a prefix followed by `*`? Empty matches nothing.
pub fn swarm_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => !pattern.is_empty() && name == pattern,
    }
}

/// The request variable found in an environment, by name and raw value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestVar<'a> {
    pub name: &'a str,
    pub value: &'a str,
}

/// Finds the request in `KEY=VALUE` strings (an OCI `process.env`).
/// `AMD_VISIBLE_DEVICES` wins over the Swarm variables ([`swarm_matches`]);
/// among those, the last one in the environment wins, as the last occurrence
/// of a variable does in a shell (and as in upstream's runtime, where each
/// one overwrites the previous). Cheap: this runs on every container start.
pub fn find_request<'a, I>(env: I, swarm_resource: &'a str) -> Option<RequestVar<'a>>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut visible = None;
    let mut swarm = None;
    for entry in env {
        if let Some((name, value)) = entry.split_once('=') {
            if name == VISIBLE_DEVICES {
                visible = Some(RequestVar { name, value });
            } else if swarm_matches(swarm_resource, name) {
                swarm = Some(RequestVar { name, value });
            }
        }
    }
    visible.or(swarm)
}

/// The orchestrator's assignment beside an `AMD_VISIBLE_DEVICES` request:
/// the Swarm variable [`find_request`] would have taken without it. `None`
/// without `AMD_VISIBLE_DEVICES` (the assignment is then the request itself)
/// or without a Swarm variable.
pub fn find_assignment<'a, I>(env: I, swarm_resource: &'a str) -> Option<RequestVar<'a>>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut visible = false;
    let mut swarm = None;
    for entry in env {
        if let Some((name, value)) = entry.split_once('=') {
            if name == VISIBLE_DEVICES {
                visible = true;
            } else if swarm_matches(swarm_resource, name) {
                swarm = Some(RequestVar { name, value });
            }
        }
    }
    swarm.filter(|_| visible)
}

/// Checks that `selection` (what `var` resolved to) stays within the
/// orchestrator's `assignment`: every selected GPU is one it assigned. An
/// empty or `void` assignment assigns nothing and bounds nothing; one that
/// does not resolve is refused as any request would be.
pub fn check_assignment(
    var: &RequestVar,
    selection: &Selection,
    assignment: &RequestVar,
    inventory: &Inventory,
) -> Result<(), RequestError> {
    let assigned = Request::parse(assignment.name, assignment.value)?;
    if !assigned.is_gpu() {
        return Ok(());
    }
    let assigned = assigned.resolve(assignment, inventory)?;
    let beyond: Vec<usize> = selection
        .0
        .iter()
        .filter(|i| !assigned.0.contains(i))
        .copied()
        .collect();
    if beyond.is_empty() {
        return Ok(());
    }
    Err(RequestError {
        variable: var.name.to_string(),
        value: var.value.to_string(),
        problem: Problem::BeyondAssignment {
            assignment: format!("{}={}", assignment.name, assignment.value),
            assigned: assigned.0,
            beyond,
        },
    })
}

/// One item of a device list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selector {
    Index(usize),
    /// Inclusive range of indices.
    Range(usize, usize),
    UniqueId(u64),
    /// A physical GPU with all its partitions.
    Pci(PciAddress),
}

/// What a container asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Unset, empty or `void`: not a GPU container; nothing is touched.
    NotGpu,
    /// `none`: a GPU container that gets no GPU.
    NoGpus,
    /// `all`, in any case.
    All,
    Devices(Vec<Selector>),
}

/// The resolved request: GPU indices into [`Inventory::gpus`], duplicates
/// removed, first-mention order kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection(pub Vec<usize>);

/// A request that cannot be satisfied. Displays as
/// `AMD_VISIBLE_DEVICES=7: index 7 is out of range, this host has 2 GPUs (0-1)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}={value}: {problem}")]
pub struct RequestError {
    pub variable: String,
    pub value: String,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    EmptyItem,
    Unrecognized(String),
    ReversedRange(String),
    KeywordInList(String),
    IndexOutOfRange {
        index: usize,
        count: usize,
    },
    UnknownUniqueId {
        id: u64,
        known: Vec<String>,
    },
    UnknownPciAddress {
        address: PciAddress,
        known: Vec<String>,
    },
    /// Wider than the orchestrator's assignment (`NAME=VALUE`).
    BeyondAssignment {
        assignment: String,
        assigned: Vec<usize>,
        beyond: Vec<usize>,
    },
}

fn index_list(indices: &[usize]) -> String {
    indices
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::EmptyItem => write!(f, "the list has an empty item"),
            Problem::Unrecognized(item) => write!(
                f,
                "{item:?} is not a GPU index (0), range (0-3), unique id (0x…), PCI address \
                 (0000:c1:00.0), \"all\", \"none\" or \"void\""
            ),
            Problem::ReversedRange(item) => {
                write!(f, "range {item:?} ends before it starts")
            }
            Problem::KeywordInList(item) => {
                write!(f, "{item:?} cannot be combined with other items")
            }
            Problem::IndexOutOfRange { index, count } => {
                write!(f, "index {index} is out of range, {}", host_has(*count))
            }
            Problem::UnknownUniqueId { id, known } => {
                write!(
                    f,
                    "no GPU has unique id {id:#x}; {}",
                    known_list("unique ids", known)
                )
            }
            Problem::UnknownPciAddress { address, known } => {
                write!(
                    f,
                    "no GPU at PCI address {address}; {}",
                    known_list("GPUs at", known)
                )
            }
            Problem::BeyondAssignment {
                assignment,
                assigned,
                beyond,
            } => write!(
                f,
                "asks for GPUs {} beyond the orchestrator's assignment {assignment} (GPUs {}); \
                 {VISIBLE_DEVICES} may narrow an assignment, never widen it",
                index_list(beyond),
                if assigned.is_empty() {
                    "none".to_string()
                } else {
                    index_list(assigned)
                }
            ),
        }
    }
}

fn host_has(count: usize) -> String {
    match count {
        0 => "this host has no AMD GPUs".to_string(),
        1 => "this host has 1 GPU (0)".to_string(),
        n => format!("this host has {n} GPUs (0-{})", n - 1),
    }
}

fn known_list(what: &str, known: &[String]) -> String {
    if known.is_empty() {
        "this host has none".to_string()
    } else {
        format!("this host has {what} {}", known.join(", "))
    }
}

impl Request {
    /// Parses a request value. `variable` only names it in errors.
    pub fn parse(variable: &str, value: &str) -> Result<Request, RequestError> {
        let fail = |problem| RequestError {
            variable: variable.to_string(),
            value: value.to_string(),
            problem,
        };
        let trimmed = value.trim();
        if trimmed.is_empty() || trimmed.eq_ignore_ascii_case("void") {
            return Ok(Request::NotGpu);
        }
        if trimmed.eq_ignore_ascii_case("none") {
            return Ok(Request::NoGpus);
        }
        if trimmed.eq_ignore_ascii_case("all") {
            return Ok(Request::All);
        }
        let mut selectors = Vec::new();
        for item in trimmed.split(',').map(str::trim) {
            if item.is_empty() {
                return Err(fail(Problem::EmptyItem));
            }
            if ["all", "none", "void"]
                .iter()
                .any(|k| item.eq_ignore_ascii_case(k))
            {
                return Err(fail(Problem::KeywordInList(item.to_string())));
            }
            selectors.push(parse_item(item).map_err(fail)?);
        }
        Ok(Request::Devices(selectors))
    }

    /// Does resolving it need the GPUs' unique ids?
    pub fn names_unique_ids(&self) -> bool {
        matches!(self, Request::Devices(s) if s.iter().any(|x| matches!(x, Selector::UniqueId(_))))
    }

    /// Does this request make the container a GPU container at all?
    pub fn is_gpu(&self) -> bool {
        !matches!(self, Request::NotGpu)
    }

    /// Resolves the request against the host. `var` is the variable it came
    /// from, named in errors.
    pub fn resolve(
        &self,
        var: &RequestVar,
        inventory: &Inventory,
    ) -> Result<Selection, RequestError> {
        let fail = |problem| RequestError {
            variable: var.name.to_string(),
            value: var.value.to_string(),
            problem,
        };
        let gpus = &inventory.gpus;
        let mut picked: Vec<usize> = Vec::new();
        let mut add = |i: usize| {
            if !picked.contains(&i) {
                picked.push(i);
            }
        };
        let selectors = match self {
            Request::NotGpu | Request::NoGpus => return Ok(Selection::default()),
            Request::All => {
                (0..gpus.len()).for_each(&mut add);
                return Ok(Selection(picked));
            }
            Request::Devices(s) => s,
        };
        let out_of_range = |index| Problem::IndexOutOfRange {
            index,
            count: gpus.len(),
        };
        for selector in selectors {
            match *selector {
                Selector::Index(i) if i < gpus.len() => add(i),
                Selector::Index(i) => return Err(fail(out_of_range(i))),
                Selector::Range(a, b) if b < gpus.len() => (a..=b).for_each(&mut add),
                Selector::Range(_, b) => return Err(fail(out_of_range(b))),
                // Partitions that share their GPU's unique id (KFD before
                // ROCm 7.0.1) are all selected, as the PCI address selects them.
                Selector::UniqueId(id) => {
                    let named = named_by(gpus, |g| g.unique_id == Some(id));
                    if named.is_empty() {
                        let known = distinct(gpus.iter().filter_map(|g| g.unique_id_hex()));
                        return Err(fail(Problem::UnknownUniqueId { id, known }));
                    }
                    named.into_iter().for_each(&mut add);
                }
                Selector::Pci(address) => {
                    let named = named_by(gpus, |g| g.pci_address == address);
                    if named.is_empty() {
                        let known = distinct(gpus.iter().map(|g| g.pci_address.to_string()));
                        return Err(fail(Problem::UnknownPciAddress { address, known }));
                    }
                    named.into_iter().for_each(&mut add);
                }
            }
        }
        Ok(Selection(picked))
    }
}

/// The indices of the GPUs `names` picks, in index order.
fn named_by(gpus: &[Gpu], names: impl Fn(&Gpu) -> bool) -> Vec<usize> {
    gpus.iter().filter(|g| names(g)).map(|g| g.index).collect()
}

/// What exists, for an error: each value once (a GPU's partitions share its
/// PCI address, and before ROCm 7.0.1 its unique id; they sit in a row).
fn distinct(values: impl Iterator<Item = String>) -> Vec<String> {
    let mut known: Vec<String> = values.collect();
    known.dedup();
    known
}

fn parse_item(item: &str) -> Result<Selector, Problem> {
    let unrecognized = || Problem::Unrecognized(item.to_string());
    let lower = item.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("gpu-") {
        return parse_unique_id(rest).ok_or_else(unrecognized);
    }
    if lower.contains(':') {
        return lower.parse().map(Selector::Pci).map_err(|_| unrecognized());
    }
    let decimal = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if decimal(&lower) {
        return lower
            .parse()
            .map(Selector::Index)
            .map_err(|_| unrecognized());
    }
    if let Some((a, b)) = lower.split_once('-') {
        let (a, b) = (a.trim(), b.trim());
        if !decimal(a) || !decimal(b) {
            return Err(unrecognized());
        }
        let (a, b): (usize, usize) = (
            a.parse().map_err(|_| unrecognized())?,
            b.parse().map_err(|_| unrecognized())?,
        );
        if a > b {
            return Err(Problem::ReversedRange(item.to_string()));
        }
        return Ok(Selector::Range(a, b));
    }
    parse_unique_id(&lower).ok_or_else(unrecognized)
}

/// `0x…` or bare hex, at most 64 bits.
fn parse_unique_id(s: &str) -> Option<Selector> {
    let hex = s.strip_prefix("0x").unwrap_or(s);
    if hex.is_empty() || hex.len() > 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(Selector::UniqueId)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_ids_are_needed_only_when_named() {
        let needs = |v: &str| {
            Request::parse(VISIBLE_DEVICES, v)
                .unwrap()
                .names_unique_ids()
        };
        assert!(!needs("all"));
        assert!(!needs("0,2-3,0000:c1:00.0"));
        assert!(!needs("none"));
        assert!(needs("1,0x1c2b3a4d5e6f7081"));
        assert!(needs("GPU-1c2b3a4d5e6f7081"));
    }
}
