//! The tracker's rules end to end on a temp state file: upstream's
//! defaults, all-or-nothing changes, dead and reused holders, changed GPUs,
//! and 50 racing reservations.

use super::*;
use crate::hardware::{Gpu, PciAddress};
use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, Barrier};

fn inventory(n: usize) -> Inventory {
    Inventory {
        kfd: None,
        gpus: (0..n)
            .map(|i| Gpu {
                index: i,
                pci_address: format!("0000:{:02x}:00.0", i + 3)
                    .parse::<PciAddress>()
                    .unwrap(),
                partition: None,
                unique_id: Some(0x1000 + i as u64),
                card: None,
                render: None,
                compute_partition: None,
                memory_partition: None,
            })
            .collect(),
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("amd-tracker-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    d.join("state.json")
}

/// A live holder: a `sleep` of its own (one process is one holder),
/// killed when this is dropped.
struct Live(Holder, std::process::Child);

impl std::ops::Deref for Live {
    type Target = Holder;
    fn deref(&self) -> &Holder {
        &self.0
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.1.kill();
        let _ = self.1.wait();
    }
}

fn me(id: &str) -> Live {
    let child = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    Live(
        Holder::for_process(id, "/b", child.id() as i32).unwrap(),
        child,
    )
}

#[test]
fn upstream_defaults_and_lifecycle() {
    let inv = inventory(4);
    let t = Tracker::new(&tmp("life"));
    assert!(!t.is_enabled().unwrap(), "disabled until enabled");
    assert_eq!(t.status(&inv).unwrap(), None);
    assert!(matches!(
        t.set_mode(&inv, &[0], Mode::Exclusive),
        Err(TrackerError::Disabled)
    ));
    t.reserve(&inv, &[0], &me("a")).unwrap(); // disabled: not recorded
    assert!(t.enable(&inv).unwrap());
    assert!(!t.enable(&inv).unwrap(), "already enabled");
    let st = t.status(&inv).unwrap().unwrap();
    assert!(st
        .iter()
        .all(|g| g.mode == Mode::Shared && g.holders.is_empty()));
    let (a, b, c) = (me("a"), me("b"), me("c"));
    t.reserve(&inv, &[0, 1], &a).unwrap();
    t.reserve(&inv, &[1], &b).unwrap();
    // GPU 1 has two holders: it cannot be made exclusive; nothing changes.
    let e = t
        .set_mode(&inv, &[0, 1], Mode::Exclusive)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("GPUs [1] have not been made exclusive") && e.contains("a, b"),
        "{e}"
    );
    assert!(t
        .status(&inv)
        .unwrap()
        .unwrap()
        .iter()
        .all(|g| g.mode == Mode::Shared));
    t.set_mode(&inv, &[0], Mode::Exclusive).unwrap();
    let e = t.reserve(&inv, &[2, 0], &c).unwrap_err().to_string();
    assert!(
        e.contains("GPU 0 is exclusive and held by container a"),
        "{e}"
    );
    assert!(
        t.status(&inv).unwrap().unwrap()[2].holders.is_empty(),
        "all or nothing"
    );
    // The holder itself again (the hook run twice) is fine.
    t.reserve(&inv, &[0], &a).unwrap();
    assert!(t.release_holder(&a).unwrap());
    t.reserve(&inv, &[0], &c).unwrap();
    // Reset: all shared, no holders, still enabled.
    assert!(t.reset(&inv).unwrap());
    let st = t.status(&inv).unwrap().unwrap();
    assert!(st
        .iter()
        .all(|g| g.mode == Mode::Shared && g.holders.is_empty()));
    assert!(t.disable().unwrap());
    assert_eq!(t.status(&inv).unwrap(), None);
    assert!(t.enable(&inv).unwrap());
    assert!(t
        .status(&inv)
        .unwrap()
        .unwrap()
        .iter()
        .all(|g| g.holders.is_empty()));
}

#[test]
fn dead_holders_are_reclaimed() {
    let inv = inventory(2);
    let t = Tracker::new(&tmp("dead"));
    t.enable(&inv).unwrap();
    t.set_mode(&inv, &[0], Mode::Exclusive).unwrap();
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let holder = Holder::for_process("gone", "/b", child.id() as i32).unwrap();
    t.reserve(&inv, &[0], &holder).unwrap();
    assert!(t.reserve(&inv, &[0], &me("next")).is_err());
    child.kill().unwrap();
    child.wait().unwrap();
    t.reserve(&inv, &[0], &me("next")).unwrap();
    // Another boot: the same pid and start time mean nothing.
    let rebooted = Holder {
        boot_id: "other-boot".into(),
        ..me("old").0.clone()
    };
    assert!(!rebooted.alive());
}

/// One id under two runtime roots (two bundles) is two containers: the
/// second does not get the first's exclusive GPU, and its poststop does
/// not free the first's; a holder from older state (no bundle) is
/// matched by id.
#[test]
fn a_reused_id_is_another_holder() {
    let inv = inventory(2);
    let t = Tracker::new(&tmp("reuse"));
    t.enable(&inv).unwrap();
    t.set_mode(&inv, &[0], Mode::Exclusive).unwrap();
    let first = me("x");
    let mut second = me("x");
    second.0.bundle = Some("/other".into());
    t.reserve(&inv, &[0, 1], &first).unwrap();
    let e = t.reserve(&inv, &[0], &second).unwrap_err().to_string();
    assert!(e.contains("held by container x"), "{e}");
    t.reserve(&inv, &[1], &second).unwrap();
    // The second's poststop (its process gone): the first keeps GPU 1.
    drop(second);
    assert!(t.release("x", "/other").unwrap());
    let st = t.status(&inv).unwrap().unwrap();
    assert_eq!(st[1].holders, vec![first.0.clone()]);
    // Not while its process lives: poststop of the first's id and bundle
    // leaves a live one alone.
    assert!(!t.release("x", "/b").unwrap());
    // Older state: holders without a bundle are read and matched by id.
    let old = r#"{"enabled":true,"gpus":[{"index":0,"location":"0000:03:00.0",
        "unique_id":"0x1000","mode":"shared","holders":[{"container":"old","pid":1,
        "start_time":1,"boot_id":"b"}]},{"index":1,"location":"0000:04:00.0",
        "unique_id":"0x1001","mode":"shared"}]}"#;
    let state: State = serde_json::from_str(old).unwrap();
    assert!(state.gpus[0].holders[0].names("old", "/any/bundle"));
    assert!(!state.gpus[0].holders[0].names("new", "/any/bundle"));
}

#[test]
fn changed_gpus_are_refused_until_reset() {
    let t = Tracker::new(&tmp("mismatch"));
    t.enable(&inventory(2)).unwrap();
    let e = t.status(&inventory(3)).unwrap_err().to_string();
    assert!(
        e.contains("2 GPUs then, 3 now") && e.contains("reset"),
        "{e}"
    );
    assert!(t.reserve(&inventory(3), &[0], &me("x")).is_err());
    t.reset(&inventory(3)).unwrap();
    assert_eq!(t.status(&inventory(3)).unwrap().unwrap().len(), 3);
    fs::write(t.state_file(), b"garbage").unwrap();
    assert!(matches!(
        t.status(&inventory(3)),
        Err(TrackerError::Corrupt { .. })
    ));
    t.reset(&inventory(3)).unwrap();
}

/// 50 concurrent reservations of one exclusive GPU (separate lock
/// descriptors, as separate hook processes have): exactly one wins.
#[test]
fn fifty_concurrent_reservations_one_exclusive_winner() {
    let inv = Arc::new(inventory(1));
    let path = tmp("race");
    let t = Tracker::new(&path);
    t.enable(&inv).unwrap();
    t.set_mode(&inv, &[0], Mode::Exclusive).unwrap();
    let barrier = Arc::new(Barrier::new(50));
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let (inv, barrier, path) = (Arc::clone(&inv), Arc::clone(&barrier), path.clone());
            std::thread::spawn(move || {
                // Each its own live process, alive until all are done.
                let holder = me(&format!("c{i}"));
                barrier.wait();
                let ok = Tracker::new(&path).reserve(&inv, &[0], &holder).is_ok();
                (ok, holder)
            })
        })
        .collect();
    let results: Vec<(bool, Live)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let winners = results.iter().filter(|(ok, _)| *ok).count();
    assert_eq!(winners, 1);
    assert_eq!(t.status(&inv).unwrap().unwrap()[0].holders.len(), 1);
}
