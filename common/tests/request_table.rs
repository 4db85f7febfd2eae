//! Table test of AMD_VISIBLE_DEVICES values against a fixed inventory: two
//! GPUs, the first in CPX mode with three partitions (indices 0-2), then an
//! SPX GPU (index 3), then one without a unique id (index 4).

use amd_container_common::request::{find_request, Request, RequestVar};
use amd_container_common::Inventory;

mod support;

fn inventory() -> Inventory {
    let gpu = |index, pci, partition, uid| support::gpu(index, pci, partition, uid, 0);
    Inventory {
        kfd: None,
        gpus: vec![
            gpu(0, "0000:05:00.0", Some(0), Some(0xaa00)),
            gpu(1, "0000:05:00.0", Some(1), Some(0xaa01)),
            gpu(2, "0000:05:00.0", Some(2), Some(0xaa02)),
            gpu(3, "0000:c1:00.0", None, Some(0x1c2b3a4d5e6f7081)),
            gpu(4, "0001:0a:00.0", None, None),
        ],
    }
}

/// Ok(indices) or Err(the exact message).
type Expected = Result<Option<&'static [usize]>, &'static str>;

const CASES: &[(&str, Expected)] = &[
    // Not a GPU container (None) / a GPU container with nothing.
    ("", Ok(None)),
    ("   ", Ok(None)),
    ("void", Ok(None)),
    ("VOID", Ok(None)),
    ("none", Ok(Some(&[]))),
    ("None", Ok(Some(&[]))),
    ("all", Ok(Some(&[0, 1, 2, 3, 4]))),
    ("ALL", Ok(Some(&[0, 1, 2, 3, 4]))),
    (" All ", Ok(Some(&[0, 1, 2, 3, 4]))),
    // Indices and ranges.
    ("0", Ok(Some(&[0]))),
    ("4", Ok(Some(&[4]))),
    ("3,1", Ok(Some(&[3, 1]))),
    (" 3 , 1 ", Ok(Some(&[3, 1]))),
    ("1,1,1", Ok(Some(&[1]))),
    ("0-2", Ok(Some(&[0, 1, 2]))),
    ("2-2", Ok(Some(&[2]))),
    ("3,0-3", Ok(Some(&[3, 0, 1, 2]))),
    ("007", Err("AMD_VISIBLE_DEVICES=007: index 7 is out of range, this host has 5 GPUs (0-4)")),
    ("5", Err("AMD_VISIBLE_DEVICES=5: index 5 is out of range, this host has 5 GPUs (0-4)")),
    ("0,9", Err("AMD_VISIBLE_DEVICES=0,9: index 9 is out of range, this host has 5 GPUs (0-4)")),
    ("3-5", Err("AMD_VISIBLE_DEVICES=3-5: index 5 is out of range, this host has 5 GPUs (0-4)")),
    ("3-1", Err("AMD_VISIBLE_DEVICES=3-1: range \"3-1\" ends before it starts")),
    // Unique ids, in every accepted spelling.
    ("0x1c2b3a4d5e6f7081", Ok(Some(&[3]))),
    ("0X1C2B3A4D5E6F7081", Ok(Some(&[3]))),
    ("1c2b3a4d5e6f7081", Ok(Some(&[3]))),
    ("GPU-0x1c2b3a4d5e6f7081", Ok(Some(&[3]))),
    ("gpu-1C2B3A4D5E6F7081", Ok(Some(&[3]))),
    ("0xaa01,0", Ok(Some(&[1, 0]))),
    ("0xdead", Err("AMD_VISIBLE_DEVICES=0xdead: no GPU has unique id 0xdead; this host has unique ids 0xaa00, 0xaa01, 0xaa02, 0x1c2b3a4d5e6f7081")),
    ("0x", Err("AMD_VISIBLE_DEVICES=0x: \"0x\" is not a GPU index (0), range (0-3), unique id (0x…), PCI address (0000:c1:00.0), \"all\", \"none\" or \"void\"")),
    ("0x1c2b3a4d5e6f70812", Err("AMD_VISIBLE_DEVICES=0x1c2b3a4d5e6f70812: \"0x1c2b3a4d5e6f70812\" is not a GPU index (0), range (0-3), unique id (0x…), PCI address (0000:c1:00.0), \"all\", \"none\" or \"void\"")),
    // PCI addresses: a GPU with all its partitions.
    ("0000:05:00.0", Ok(Some(&[0, 1, 2]))),
    ("05:00.0", Ok(Some(&[0, 1, 2]))),
    ("0000:C1:00.0", Ok(Some(&[3]))),
    ("0001:0a:00.0", Ok(Some(&[4]))),
    ("1,0000:05:00.0", Ok(Some(&[1, 0, 2]))),
    ("0000:06:00.0", Err("AMD_VISIBLE_DEVICES=0000:06:00.0: no GPU at PCI address 0000:06:00.0; this host has GPUs at 0000:05:00.0, 0000:c1:00.0, 0001:0a:00.0")),
    ("0000:05:00", Err("AMD_VISIBLE_DEVICES=0000:05:00: \"0000:05:00\" is not a GPU index (0), range (0-3), unique id (0x…), PCI address (0000:c1:00.0), \"all\", \"none\" or \"void\"")),
    // Garbage and misuse of keywords: never silently ignored.
    // Bare hex is a unique id: "abc" names one, and the message says so.
    ("abc", Err("AMD_VISIBLE_DEVICES=abc: no GPU has unique id 0xabc; this host has unique ids 0xaa00, 0xaa01, 0xaa02, 0x1c2b3a4d5e6f7081")),
    ("xyz", Err("AMD_VISIBLE_DEVICES=xyz: \"xyz\" is not a GPU index (0), range (0-3), unique id (0x…), PCI address (0000:c1:00.0), \"all\", \"none\" or \"void\"")),
    ("gpu0", Err("AMD_VISIBLE_DEVICES=gpu0: \"gpu0\" is not a GPU index (0), range (0-3), unique id (0x…), PCI address (0000:c1:00.0), \"all\", \"none\" or \"void\"")),
    ("-1", Err("AMD_VISIBLE_DEVICES=-1: \"-1\" is not a GPU index (0), range (0-3), unique id (0x…), PCI address (0000:c1:00.0), \"all\", \"none\" or \"void\"")),
    ("0,", Err("AMD_VISIBLE_DEVICES=0,: the list has an empty item")),
    (",0", Err("AMD_VISIBLE_DEVICES=,0: the list has an empty item")),
    ("0,,1", Err("AMD_VISIBLE_DEVICES=0,,1: the list has an empty item")),
    ("all,0", Err("AMD_VISIBLE_DEVICES=all,0: \"all\" cannot be combined with other items")),
    ("0,none", Err("AMD_VISIBLE_DEVICES=0,none: \"none\" cannot be combined with other items")),
    ("0;1", Err("AMD_VISIBLE_DEVICES=0;1: \"0;1\" is not a GPU index (0), range (0-3), unique id (0x…), PCI address (0000:c1:00.0), \"all\", \"none\" or \"void\"")),
    ("99999999999999999999999", Err("AMD_VISIBLE_DEVICES=99999999999999999999999: \"99999999999999999999999\" is not a GPU index (0), range (0-3), unique id (0x…), PCI address (0000:c1:00.0), \"all\", \"none\" or \"void\"")),
];

fn outcome(value: &str, inv: &Inventory) -> Result<Option<Vec<usize>>, String> {
    let var = RequestVar {
        name: "AMD_VISIBLE_DEVICES",
        value,
    };
    let request = Request::parse(var.name, var.value).map_err(|e| e.to_string())?;
    if !request.is_gpu() {
        return Ok(None);
    }
    request
        .resolve(&var, inv)
        .map(|s| Some(s.0))
        .map_err(|e| e.to_string())
}

#[test]
fn table() {
    assert!(CASES.len() >= 30);
    let inv = inventory();
    let mut failures = Vec::new();
    for (value, expected) in CASES {
        let expected = expected
            .map(|o| o.map(<[usize]>::to_vec))
            .map_err(str::to_string);
        let got = outcome(value, &inv);
        if got != expected {
            failures.push(format!("{value:?}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn counts_in_messages() {
    let empty = Inventory::default();
    assert_eq!(
        outcome("0", &empty).unwrap_err(),
        "AMD_VISIBLE_DEVICES=0: index 0 is out of range, this host has no AMD GPUs"
    );
    let mut one = inventory();
    one.gpus.truncate(1);
    assert_eq!(
        outcome("7", &one).unwrap_err(),
        "AMD_VISIBLE_DEVICES=7: index 7 is out of range, this host has 1 GPU (0)"
    );
    // `all` and `none` on a host without GPUs are fine: nothing to give.
    assert_eq!(outcome("all", &empty), Ok(Some(vec![])));
}

#[test]
fn environment_lookup() {
    let swarm = "DOCKER_RESOURCE_GPU";
    let found =
        |env: &[&'static str]| find_request(env.iter().copied(), swarm).map(|v| (v.name, v.value));
    assert_eq!(found(&["PATH=/bin", "HOME=/"]), None);
    assert_eq!(
        found(&["AMD_VISIBLE_DEVICES=1"]),
        Some(("AMD_VISIBLE_DEVICES", "1"))
    );
    // The last occurrence wins, as in a shell.
    assert_eq!(
        found(&["AMD_VISIBLE_DEVICES=1", "AMD_VISIBLE_DEVICES=2"]),
        Some(("AMD_VISIBLE_DEVICES", "2"))
    );
    // AMD_VISIBLE_DEVICES wins over the Swarm variable, which is read when it is absent.
    assert_eq!(
        found(&["DOCKER_RESOURCE_GPU=0x1", "AMD_VISIBLE_DEVICES=0"]),
        Some(("AMD_VISIBLE_DEVICES", "0"))
    );
    assert_eq!(
        found(&["DOCKER_RESOURCE_GPU=0x1"]),
        Some(("DOCKER_RESOURCE_GPU", "0x1"))
    );
    // Names are exact: no prefix or case games.
    assert_eq!(
        found(&["AMD_VISIBLE_DEVICES_X=1", "amd_visible_devices=1"]),
        None
    );
    // A variable without '=' is not a request.
    assert_eq!(found(&["AMD_VISIBLE_DEVICES"]), None);
}

/// Upstream reads any `DOCKER_RESOURCE_*` variable; so does our default
/// (`hook.swarm-resource = "DOCKER_RESOURCE_*"`); an exact name still works.
#[test]
fn swarm_pattern_like_upstream() {
    use amd_container_common::request::{swarm_matches, DEFAULT_SWARM_RESOURCE};
    assert_eq!(DEFAULT_SWARM_RESOURCE, "DOCKER_RESOURCE_*");
    let found = |env: &[&'static str], pattern: &'static str| {
        find_request(env.iter().copied(), pattern).map(|v| (v.name, v.value))
    };
    let d = DEFAULT_SWARM_RESOURCE;
    // Upstream's documented Swarm kind.
    assert_eq!(
        found(&["DOCKER_RESOURCE_AMD_GPU=0x378041e1ada6015"], d),
        Some(("DOCKER_RESOURCE_AMD_GPU", "0x378041e1ada6015"))
    );
    assert_eq!(
        found(&["DOCKER_RESOURCE_GPU=1"], d),
        Some(("DOCKER_RESOURCE_GPU", "1"))
    );
    // Several: the last wins (upstream overwrites with each one it reads).
    assert_eq!(
        found(
            &["DOCKER_RESOURCE_AMD_GPU=1", "DOCKER_RESOURCE_GPU_COMPUTE=2"],
            d
        ),
        Some(("DOCKER_RESOURCE_GPU_COMPUTE", "2"))
    );
    // AMD_VISIBLE_DEVICES still decides when present.
    assert_eq!(
        found(&["AMD_VISIBLE_DEVICES=0", "DOCKER_RESOURCE_AMD_GPU=1"], d),
        Some(("AMD_VISIBLE_DEVICES", "0"))
    );
    // An exact name matches only itself; empty matches nothing.
    assert_eq!(
        found(&["DOCKER_RESOURCE_AMD_GPU=1"], "DOCKER_RESOURCE_GPU"),
        None
    );
    assert_eq!(found(&["DOCKER_RESOURCE_GPU=1"], ""), None);
    assert!(swarm_matches("DOCKER_RESOURCE_*", "DOCKER_RESOURCE_X"));
    assert!(!swarm_matches("DOCKER_RESOURCE_*", "docker_resource_x"));
    assert!(!swarm_matches("", ""));
}

/// With an orchestrator's assignment beside it, `AMD_VISIBLE_DEVICES` may
/// narrow it (or repeat it), never widen it; the refusal names both.
#[test]
fn an_assignment_is_narrowed_never_widened() {
    use amd_container_common::request::{check_assignment, find_assignment};
    let inv = inventory();
    let swarm = "DOCKER_RESOURCE_*";
    let check = |env: &[&'static str]| {
        let var = find_request(env.iter().copied(), swarm).unwrap();
        let selection = Request::parse(var.name, var.value)
            .unwrap()
            .resolve(&var, &inv)
            .unwrap();
        match find_assignment(env.iter().copied(), swarm) {
            None => Ok(selection.0),
            Some(a) => check_assignment(&var, &selection, &a, &inv)
                .map(|()| selection.0)
                .map_err(|e| e.to_string()),
        }
    };
    // No AMD_VISIBLE_DEVICES: the assignment is the request.
    assert_eq!(check(&["DOCKER_RESOURCE_AMD_GPU=0xaa01"]), Ok(vec![1]));
    // Narrowing and repeating are fine.
    assert_eq!(
        check(&["DOCKER_RESOURCE_AMD_GPU=0-3", "AMD_VISIBLE_DEVICES=1"]),
        Ok(vec![1])
    );
    assert_eq!(
        check(&["DOCKER_RESOURCE_AMD_GPU=0xaa01", "AMD_VISIBLE_DEVICES=1"]),
        Ok(vec![1])
    );
    assert_eq!(
        check(&["DOCKER_RESOURCE_AMD_GPU=1", "AMD_VISIBLE_DEVICES=none"]),
        Ok(vec![])
    );
    // Widening is refused, naming both variables.
    assert_eq!(
        check(&["DOCKER_RESOURCE_AMD_GPU=1", "AMD_VISIBLE_DEVICES=all"]).unwrap_err(),
        "AMD_VISIBLE_DEVICES=all: asks for GPUs 0,2,3,4 beyond the orchestrator's assignment \
         DOCKER_RESOURCE_AMD_GPU=1 (GPUs 1); AMD_VISIBLE_DEVICES may narrow an assignment, \
         never widen it"
    );
    assert!(check(&["AMD_VISIBLE_DEVICES=2", "DOCKER_RESOURCE_AMD_GPU=0xaa01"]).is_err());
    // An empty assignment bounds nothing.
    assert_eq!(
        check(&["DOCKER_RESOURCE_AMD_GPU=", "AMD_VISIBLE_DEVICES=3"]),
        Ok(vec![3])
    );
}

/// Partitions that share their GPU's unique id (real MI300X CPX captures,
/// KFD before ROCm 7.0.1): the id selects every one of them, as the PCI
/// address does; the error lists each id once.
#[test]
fn shared_unique_id_selects_every_partition() {
    let mut inv = inventory();
    for gpu in &mut inv.gpus[0..3] {
        gpu.unique_id = Some(0xe3a9);
    }
    assert_eq!(outcome("0xe3a9", &inv), Ok(Some(vec![0, 1, 2])));
    assert_eq!(outcome("0000:05:00.0", &inv), Ok(Some(vec![0, 1, 2])));
    assert_eq!(outcome("0x1c2b3a4d5e6f7081", &inv), Ok(Some(vec![3])));
    assert_eq!(
        outcome("0xdead", &inv),
        Err("AMD_VISIBLE_DEVICES=0xdead: no GPU has unique id 0xdead; this host has unique ids 0xe3a9, 0x1c2b3a4d5e6f7081".to_string())
    );
}
