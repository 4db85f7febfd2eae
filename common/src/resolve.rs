//! The one request → edits pipeline: from a parsed request (and the
//! orchestrator's assignment beside it) to the host's GPUs, the selection
//! and the device nodes to give. Every applier that resolves a container's
//! request (the hook's live and precreate stages, the Docker entry) goes
//! through [`resolve`]; those that already hold an inventory (`amd-ctk
//! gpu-tracker`'s GPU-IDS, the CDI generator's device names) through
//! [`select`], the same parse and selection without discovery.
//!
//! Contract: discovery reads only what the request needs (unique ids when
//! it or the assignment names one, or the caller needs them); the GPUs and their order first (libudev),
//! then the selected GPUs' nodes only (sysfs). A request for GPUs (`all` or
//! any selector, not `none`) on a host without any fails with the reason
//! (driver not loaded, or no GPU), naming the variable, rather than giving
//! a container no GPU. A selection beyond the assignment is refused
//! ([`check_assignment`]). Nothing is logged or written.

use crate::hardware::{require_gpus, scan, Detail, DiscoveryError, NoGpuError};
use crate::request::{check_assignment, Request, RequestError, RequestVar};
use crate::{ContainerEdits, Inventory, Selection};

/// Why a request did not resolve.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("{name}={value}: {source}")]
    NoGpuFor {
        name: String,
        value: String,
        source: NoGpuError,
    },
}

/// A resolved request: the inventory (with the selected GPUs' nodes), the
/// selection and its edits.
#[derive(Debug)]
pub struct Resolved {
    pub inventory: Inventory,
    pub selection: Selection,
    pub edits: ContainerEdits,
}

/// What discovery must read to resolve `request` (and the orchestrator's
/// `assignment` beside it): unique ids when either names one, or when the
/// caller needs them anyway (`unique_ids`: the GPU tracker identifies GPUs
/// by them). Nothing for the log.
fn detail_for(request: &Request, assignment: Option<&RequestVar>, unique_ids: bool) -> Detail {
    let assigned_ids = assignment
        .is_some_and(|a| Request::parse(a.name, a.value).is_ok_and(|r| r.names_unique_ids()));
    Detail {
        unique_ids: request.names_unique_ids() || assigned_ids || unique_ids,
        partition_modes: false,
    }
}

/// Resolves `request` (parsed from `var`) on this host, within the
/// orchestrator's `assignment` when there is one. `unique_ids`: the caller
/// needs every GPU's unique id whatever the request names (the GPU tracker
/// identifies GPUs by them).
pub fn resolve(
    request: &Request,
    var: &RequestVar,
    assignment: Option<&RequestVar>,
    unique_ids: bool,
) -> Result<Resolved, ResolveError> {
    let scan = scan(detail_for(request, assignment, unique_ids))?;
    if *request != Request::NoGpus {
        require_gpus(scan.gpus()).map_err(|source| ResolveError::NoGpuFor {
            name: var.name.to_string(),
            value: var.value.to_string(),
            source,
        })?;
    }
    let selection = request.resolve(var, scan.gpus())?;
    if let Some(a) = assignment {
        check_assignment(var, &selection, a, scan.gpus())?;
    }
    let inventory = scan.with_nodes(&selection.0)?;
    let edits = ContainerEdits::for_selection(&inventory, &selection);
    Ok(Resolved {
        inventory,
        selection,
        edits,
    })
}

/// `var`'s request and what it selects among GPUs already discovered: the
/// parse and the selection [`resolve`] makes after its own discovery.
/// `none` and a value that asks for no GPU select nothing (no error).
pub fn select(
    var: &RequestVar,
    inventory: &Inventory,
) -> Result<(Request, Selection), RequestError> {
    let request = Request::parse(var.name, var.value)?;
    let selection = request.resolve(var, inventory)?;
    Ok((request, selection))
}
