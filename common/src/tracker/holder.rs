//! A holder of GPUs: one container process, named by its id and bundle
//! and identified by its init's pid, start time and the boot id
//! ([`Holder`]).
//!
//! Contract: reads `/proc` only; a process that is gone, a zombie, or from
//! another boot is not [`Holder::alive`], so a reused pid never keeps a dead
//! container's GPUs.

use serde::{Deserialize, Serialize};
use std::fs;

/// A container holding GPUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub container: String,
    /// The container's bundle (absent in state written by older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    /// Host pid of the container's init when it was created.
    pub pid: i32,
    /// Its start time (`/proc/PID/stat` field 22), against pid reuse.
    pub start_time: u64,
    /// `/proc/sys/kernel/random/boot_id` then, against reboots.
    pub boot_id: String,
}

impl Holder {
    /// The holder for container `id` (bundle `bundle`) whose init is `pid`,
    /// as the host sees it now; `None` when that process does not exist.
    pub fn for_process(container: &str, bundle: &str, pid: i32) -> Option<Holder> {
        Some(Holder {
            container: container.to_string(),
            bundle: Some(bundle.to_string()),
            pid,
            start_time: start_time(pid)?,
            boot_id: boot_id(),
        })
    }

    /// Is the holder's process still the one that was recorded?
    pub fn alive(&self) -> bool {
        self.boot_id == boot_id() && start_time(self.pid) == Some(self.start_time)
    }

    /// The same process (the same container's hook run again)?
    pub fn same_process(&self, other: &Holder) -> bool {
        self.pid == other.pid
            && self.start_time == other.start_time
            && self.boot_id == other.boot_id
    }

    /// Is this the container `container` in `bundle`? A holder recorded
    /// without a bundle (older state) is matched by id.
    pub fn names(&self, container: &str, bundle: &str) -> bool {
        self.container == container && self.bundle.as_deref().is_none_or(|b| b == bundle)
    }
}

fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Field 22 of `/proc/PID/stat` (after the parenthesised command name);
/// `None` for a process that is gone or a zombie (state Z or X: killed, not
/// yet reaped by whatever it was reparented to).
fn start_time(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    if matches!(fields.next(), Some("Z" | "X") | None) {
        return None;
    }
    fields.nth(18)?.parse().ok()
}
