//! `amd-ctk cdi validate` on hostile input: a document nested 100 000 levels
//! deep is refused at once with the position (exit 2), where libyaml used to
//! take minutes (issue 9, item 7). The real binary, with a deadline.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CTK: &str = env!("CARGO_BIN_EXE_amd-ctk");

/// Runs `amd-ctk cdi validate --path FILE`, killed after `limit`.
fn validate_within(path: &Path, limit: Duration) -> (Option<i32>, String, Duration) {
    let mut child = Command::new(CTK)
        .args(["cdi", "validate", "--path"])
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            return (status.code(), err, start.elapsed());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return (None, String::new(), start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn deeply_nested_documents_are_refused_at_once() {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("amd-ctk-deep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let n = 100_000;
    for (name, text, format) in [
        ("maps.yaml", "{a: ".repeat(n) + "1" + &"}".repeat(n), "YAML"),
        (
            "pairs.yaml",
            "[a: ".repeat(n) + "1" + &"]".repeat(n),
            "YAML",
        ),
        ("lists.json", "[".repeat(n) + &"]".repeat(n), "JSON"),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, &text).unwrap();
        let (code, err, took) = validate_within(&path, Duration::from_secs(10));
        assert_eq!(code, Some(2), "{name}: {err} (after {took:?})");
        assert!(
            err.contains(&format!(
                "is not valid {format}: nested deeper than 64 levels at line 1 column"
            )),
            "{name}: {err}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
