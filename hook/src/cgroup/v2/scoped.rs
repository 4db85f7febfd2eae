//! [`Scoped`]: a container cgroup whose own scope systemd manages (the
//! systemd cgroup driver), as a wrapper around its [`V2Cgroup`].
//!
//! Contract: systemd's device program on the scope is changed through
//! systemd first (`DeviceAllow`, see [`crate::systemd`]), so that the grant
//! holds when systemd re-applies the unit's properties, and the scope's
//! level is then left to the cgroup to judge and to replace what still
//! denies; a failure there undoes the `DeviceAllow` too, after the cgroup
//! has undone its own part. The pins systemd attaches programs from
//! (`BPFProgram=device:PIN`) are read when the scope is opened.

use super::judge::program_ids;
use super::levels::V2Cgroup;
use super::pin::DevicePin;
use crate::cgroup::{Backend, CgroupError};
use crate::systemd::Scope;
use amd_container_common::DeviceNode;
use oci_spec::runtime::LinuxDeviceCgroup;
use std::os::fd::BorrowedFd;
use std::time::Duration;

/// How long systemd may take to rebuild a scope's device program after its
/// properties changed (it does so from its event loop, after replying).
const SYSTEMD_APPLY_WAIT: Duration = Duration::from_secs(3);

/// A container's cgroup and the systemd scope that owns it (at or above it).
pub struct Scoped {
    scope: Scope,
    cgroup: V2Cgroup,
}

impl Scoped {
    /// The cgroup's levels up to the scope's become the container's own.
    pub fn new(mut scope: Scope, mut cgroup: V2Cgroup) -> Result<Scoped, CgroupError> {
        let mut pins = Vec::new();
        for p in scope.device_program_pins()? {
            pins.extend(DevicePin::open(&p)?);
        }
        cgroup.own_up_to(scope.levels_up, pins);
        Ok(Scoped { scope, cgroup })
    }
}

impl Backend for Scoped {
    fn allow(
        &mut self,
        nodes: &[DeviceNode],
        spec_rules: &[LinuxDeviceCgroup],
    ) -> Result<bool, CgroupError> {
        // systemd's program on the container's scope, through systemd.
        let scope_dir = self.cgroup.level(self.scope.levels_up);
        let before = program_ids(scope_dir)?;
        let change = self.scope.allow(nodes)?;
        if !change.added.is_empty() {
            wait_for_new_program(scope_dir, &before);
        }
        // Then every program on the container's levels, the scope's too.
        match self.cgroup.allow(nodes, spec_rules) {
            Ok(changed) => Ok(changed || !change.added.is_empty()),
            Err(e) => {
                if let Err(undo) = self.scope.undo(change) {
                    log::error!("undoing DeviceAllow on {}: {undo}", self.scope.unit);
                }
                Err(e)
            }
        }
    }

    fn describe(&self) -> String {
        format!(
            "{}, systemd unit {}",
            self.cgroup.describe(),
            self.scope.unit
        )
    }
}

/// Waits (bounded) until the set of programs on `dir` differs from `before`:
/// systemd has attached the program it built from the new properties.
fn wait_for_new_program(dir: BorrowedFd, before: &[u32]) {
    let start = std::time::Instant::now();
    while start.elapsed() < SYSTEMD_APPLY_WAIT {
        match program_ids(dir) {
            Ok(ids) if ids != before => return,
            Ok(_) => std::thread::sleep(Duration::from_millis(2)),
            Err(_) => return,
        }
    }
    log::warn!("systemd did not replace its device program within {SYSTEMD_APPLY_WAIT:?}");
}
