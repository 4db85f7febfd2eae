//! The house rules CONTRIBUTING.md states, checked on the tree so they stay
//! true: no production file over 400 code lines; `unsafe` only in modules
//! named `sys` or `ffi`, with `#![deny(unsafe_code)]` at every crate root and
//! `#[allow(unsafe_code)]` only on those modules' declarations; no two modules
//! of a crate that import each other (directly or round a longer circle); no
//! global mutable switch (`static` atomics, `static mut`) in production code;
//! one name per file within a crate; one engine table in amd-ctk; a `//!`
//! contract at the top of every file.
//!
//! It reads the sources as text (no compiler): a "code line" is a non-blank
//! line that is not only a comment, counted up to a trailing
//! `#[cfg(test)] mod tests { … }`; a file is test-only when its `mod`
//! declaration carries `#[cfg(test)]`. Each check has a self-test on a
//! made-up tree that breaks it, so a check that cannot fail shows up here.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The crates whose production sources the rules cover.
const CRATES: &[&str] = &["common", "hook", "ctk"];
/// The size rule (CONTRIBUTING: "Files stay small").
const MAX_CODE_LINES: usize = 400;
/// File stems that name a role rather than a concept, so several modules of
/// one crate may each have one.
const ROLE_STEMS: &[&str] = &["mod", "lib", "main", "sys", "ffi", "tests", "error"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// One source file of a crate: its path from the crate's `src/`, its text,
/// and its module path (`["cgroup", "v2"]` for `cgroup/v2/mod.rs`).
struct Source {
    rel: PathBuf,
    text: String,
    module: Vec<String>,
    test_only: bool,
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file under `src/`; binaries (`bin/…`, `main.rs`) are
/// roots of their own and keep a `bin:` prefix so they never resolve as
/// library modules.
fn module_of(rel: &Path) -> Vec<String> {
    let parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let mut module: Vec<String> = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let name = if last {
            part.trim_end_matches(".rs").to_string()
        } else {
            part.clone()
        };
        if last && (name == "mod" || (i == 0 && name == "lib")) {
            continue;
        }
        module.push(name);
    }
    if parts.first().is_some_and(|p| p == "bin" || p == "main.rs") {
        module.insert(0, "bin:".into());
    }
    module
}

fn crate_sources(src: &Path) -> Vec<Source> {
    let mut files = Vec::new();
    rs_files(src, &mut files);
    let mut sources: Vec<Source> = files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(src).expect("under src").to_path_buf();
            Source {
                module: module_of(&rel),
                text: fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
                rel,
                test_only: false,
            }
        })
        .collect();
    // A file is test-only when the declaration that brings it in is
    // `#[cfg(test)]`, or its parent module is test-only.
    let mut test_modules: BTreeSet<Vec<String>> = BTreeSet::new();
    for s in &sources {
        for name in cfg_test_mod_decls(&s.text) {
            let mut m = s.module.clone();
            m.push(name);
            test_modules.insert(m);
        }
    }
    for s in &mut sources {
        s.test_only = test_modules.iter().any(|t| s.module.starts_with(t))
            || s.rel.file_stem().is_some_and(|x| x == "tests");
    }
    sources
}

/// Names of the out-of-line modules (`mod x;`) declared under `#[cfg(test)]`.
fn cfg_test_mod_decls(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = mod_decl(line) else { continue };
        let mut j = i;
        while j > 0 && lines[j - 1].starts_with("#[") {
            j -= 1;
            if lines[j] == "#[cfg(test)]" {
                out.push(name.to_string());
            }
        }
    }
    out
}

/// `x` of `mod x;` / `pub mod x;` / `pub(crate) mod x;`.
fn mod_decl(line: &str) -> Option<&str> {
    let rest = line.strip_suffix(';')?;
    let rest = rest
        .strip_prefix("pub(crate) ")
        .or_else(|| rest.strip_prefix("pub(super) "))
        .or_else(|| rest.strip_prefix("pub "))
        .unwrap_or(rest);
    let name = rest.strip_prefix("mod ")?;
    name.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
        .then_some(name)
}

fn is_comment(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("//") || t.starts_with("/*") || t.starts_with('*')
}

/// Code lines up to a trailing `#[cfg(test)] mod tests {` block.
fn code_lines(text: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    let mut end = lines.len();
    for i in 0..lines.len().saturating_sub(1) {
        if lines[i].trim() == "#[cfg(test)]" && lines[i + 1].trim_start().starts_with("mod tests {")
        {
            end = i;
            break;
        }
    }
    lines[..end]
        .iter()
        .filter(|l| !l.trim().is_empty() && !is_comment(l))
        .count()
}

fn in_sys_module(rel: &Path) -> bool {
    rel.iter().any(|c| {
        let c = c.to_string_lossy();
        matches!(c.trim_end_matches(".rs"), "sys" | "ffi")
    })
}

/// Lines (1-based) that use `unsafe` as a keyword (blocks, fns, impls,
/// extern blocks), comments and strings' `unsafe_code` aside.
fn unsafe_lines(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !is_comment(l))
        .filter(|(_, l)| {
            let code = l.split("//").next().unwrap_or("");
            code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .any(|w| w == "unsafe")
        })
        .map(|(i, _)| i + 1)
        .collect()
}

fn is_crate_root(rel: &Path) -> bool {
    rel == Path::new("lib.rs")
        || rel == Path::new("main.rs")
        || (rel.starts_with("bin")
            && (rel.components().count() == 2 || rel.file_name().is_some_and(|f| f == "main.rs")))
}

/// The rule's breaches in one crate: (file, what).
fn unsafe_breaches(sources: &[Source]) -> Vec<String> {
    let mut out = Vec::new();
    for s in sources {
        let rel = s.rel.display();
        if !in_sys_module(&s.rel) {
            for n in unsafe_lines(&s.text) {
                out.push(format!("{rel}:{n}: `unsafe` outside a sys/ffi module"));
            }
        }
        if is_crate_root(&s.rel) && !s.text.contains("#![deny(unsafe_code)]") {
            out.push(format!("{rel}: crate root without #![deny(unsafe_code)]"));
        }
        let lines: Vec<&str> = s.text.lines().map(str::trim).collect();
        for (i, line) in lines.iter().enumerate() {
            if !line.contains("allow(unsafe_code)") || is_comment(line) {
                continue;
            }
            let next = lines[i + 1..].iter().find(|l| !l.starts_with("#["));
            let ok = line.starts_with("#[allow(unsafe_code)]")
                && next
                    .and_then(|l| mod_decl(l))
                    .is_some_and(|m| m == "sys" || m == "ffi");
            if !ok {
                out.push(format!(
                    "{rel}:{}: allow(unsafe_code) not on a `mod sys;`/`mod ffi;`",
                    i + 1
                ));
            }
        }
    }
    out
}

/// Every `use` path and inline `crate::`/`super::`/`self::` path of a file,
/// resolved to the absolute module path it names (the longest prefix that is
/// a module of the crate). `pub use` re-exports and `mod x;` are not imports.
fn imports(s: &Source, modules: &BTreeSet<Vec<String>>) -> BTreeSet<Vec<String>> {
    let mut paths: Vec<String> = Vec::new();
    let code: String = s
        .text
        .lines()
        .filter(|l| !is_comment(l))
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    // `use` statements, braces expanded.
    let mut rest = code.as_str();
    while let Some(pos) = find_word(rest, "use") {
        let before = rest[..pos].trim_end();
        let is_pub = before.ends_with("pub") || (before.ends_with(')') && before.contains("pub("));
        let before = before.trim_end_matches("pub").trim_end();
        let before = match before.strip_suffix(')') {
            Some(b) if b.trim_end().ends_with("(crate") || b.trim_end().ends_with("(super") => {
                b.rsplit_once("pub(").map_or(b, |(head, _)| head).trim_end()
            }
            _ => before,
        };
        // A `use` item starts a statement (the word in a string or a
        // longer expression is not one).
        let starts_item = before.is_empty() || before.ends_with([';', '{', '}', ']']);
        let after = &rest[pos + 3..];
        let Some(end) = after.find(';') else { break };
        if starts_item && !is_pub {
            expand_use(after[..end].trim(), "", &mut paths);
        }
        rest = &after[end..];
    }
    // Inline paths.
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(p) = code[from..].find(start) {
            let at = from + p;
            let prev = code[..at].chars().next_back();
            from = at + start.len();
            if prev.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let path: String = code[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            paths.push(path);
        }
    }
    let mut out = BTreeSet::new();
    let here = s.module.clone();
    // Inside a file, `self` is the file's module and `super` its parent.
    for path in paths {
        let segs: Vec<&str> = path.split("::").filter(|x| !x.is_empty()).collect();
        let mut abs: Vec<String> = match segs.first() {
            Some(&"crate") => Vec::new(),
            Some(&"self") | Some(&"super") => here.clone(),
            _ => continue,
        };
        let mut i = if segs.first() == Some(&"crate") { 1 } else { 0 };
        while i < segs.len() && (segs[i] == "super" || segs[i] == "self") {
            if segs[i] == "super" {
                abs.pop();
            }
            i += 1;
        }
        abs.extend(segs[i..].iter().map(|x| x.to_string()));
        // Longest prefix that is a module.
        while !abs.is_empty() && !modules.contains(&abs) {
            abs.pop();
        }
        if !modules.contains(&abs) {
            continue;
        }
        out.insert(abs);
    }
    out.remove(&s.module);
    out
}

fn find_word(hay: &str, word: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(p) = hay[from..].find(word) {
        let at = from + p;
        let before = hay[..at].chars().next_back();
        let after = hay[at + word.len()..].chars().next();
        let boundary = |c: Option<char>| !c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if boundary(before) && after.is_some_and(char::is_whitespace) {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

/// `a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e`.
fn expand_use(tree: &str, prefix: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head = &tree[..open];
        let close = tree.rfind('}').filter(|c| *c > open).unwrap_or(tree.len());
        let inner = &tree[open + 1..close];
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand_use(&inner[start..i], &format!("{prefix}{head}"), out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand_use(&inner[start..], &format!("{prefix}{head}"), out);
    } else if !tree.is_empty() {
        let tree = tree.split(" as ").next().unwrap_or(tree).trim();
        out.push(format!("{prefix}{tree}"));
    }
}

/// Import circles between the modules of one crate (strongly connected
/// components of more than one module), each as its modules' names.
fn circles(sources: &[Source]) -> Vec<Vec<String>> {
    let modules: BTreeSet<Vec<String>> = sources.iter().map(|s| s.module.clone()).collect();
    let graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = sources
        .iter()
        .map(|s| (s.module.clone(), imports(s, &modules)))
        .collect();
    // Reachability closure (the crates have ~100 modules: cheap).
    let reach = |from: &Vec<String>| -> BTreeSet<Vec<String>> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(m) = stack.pop() {
            for n in graph.get(&m).into_iter().flatten() {
                if seen.insert(n.clone()) {
                    stack.push(n.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<_, _> = modules.iter().map(|m| (m.clone(), reach(m))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for m in &modules {
        if done.contains(m) {
            continue;
        }
        let scc: Vec<Vec<String>> = modules
            .iter()
            .filter(|n| *n != m && reaches[m].contains(*n) && reaches[*n].contains(m))
            .cloned()
            .collect();
        if scc.is_empty() {
            continue;
        }
        let mut names = vec![m.join("::")];
        names.extend(scc.iter().map(|n| n.join("::")));
        done.insert(m.clone());
        done.extend(scc);
        out.push(names);
    }
    out
}

fn static_switches(s: &Source) -> Vec<String> {
    s.text
        .lines()
        .enumerate()
        .filter(|(_, l)| !is_comment(l))
        .filter(|(_, l)| {
            let t = l.trim_start();
            let t = t
                .strip_prefix("pub(crate) ")
                .or_else(|| t.strip_prefix("pub "))
                .unwrap_or(t);
            t.starts_with("static mut ")
                || (t.starts_with("static ") && t.contains(": Atomic"))
                || (t.starts_with("static ") && t.contains("atomic::Atomic"))
        })
        .map(|(i, l)| format!("{}:{}: {}", s.rel.display(), i + 1, l.trim()))
        .collect()
}

fn duplicate_stems(sources: &[Source]) -> Vec<String> {
    let mut by_stem: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in sources.iter().filter(|s| !s.test_only) {
        let stem = s.rel.file_stem().map(|x| x.to_string_lossy().into_owned());
        let stem = match stem.as_deref() {
            Some("mod") => s.module.last().cloned().unwrap_or_default(),
            Some(x) => x.to_string(),
            None => continue,
        };
        if ROLE_STEMS.contains(&stem.as_str()) || s.module.first().is_some_and(|m| m == "bin:") {
            continue;
        }
        by_stem
            .entry(stem)
            .or_default()
            .push(s.rel.display().to_string());
    }
    by_stem
        .into_iter()
        .filter(|(_, files)| files.len() > 1)
        .map(|(stem, files)| format!("{stem}: {}", files.join(", ")))
        .collect()
}

fn each_crate(check: impl Fn(&str, &[Source]) -> Vec<String>) -> Vec<String> {
    CRATES
        .iter()
        .flat_map(|c| {
            let sources = crate_sources(&repo().join(c).join("src"));
            check(c, &sources)
                .into_iter()
                .map(move |b| format!("{c}/src/{b}"))
        })
        .collect()
}

#[test]
fn no_production_file_over_the_size_rule() {
    let breaches = each_crate(|_, sources| {
        sources
            .iter()
            .filter(|s| !s.test_only)
            .filter_map(|s| {
                let n = code_lines(&s.text);
                (n > MAX_CODE_LINES).then(|| format!("{}: {n} code lines", s.rel.display()))
            })
            .collect()
    });
    assert!(
        breaches.is_empty(),
        "over {MAX_CODE_LINES} code lines:\n{}",
        breaches.join("\n")
    );
}

#[test]
fn unsafe_only_in_sys_and_ffi_modules() {
    let breaches = each_crate(|_, sources| unsafe_breaches(sources));
    assert!(breaches.is_empty(), "{}", breaches.join("\n"));
}

#[test]
fn no_import_circles() {
    let breaches = each_crate(|_, sources| {
        circles(sources)
            .into_iter()
            .map(|c| format!(" circle: {}", c.join(" <-> ")))
            .collect()
    });
    assert!(breaches.is_empty(), "{}", breaches.join("\n"));
}

#[test]
fn no_global_mutable_switches() {
    let breaches = each_crate(|_, sources| {
        sources
            .iter()
            .filter(|s| !s.test_only)
            .flat_map(static_switches)
            .collect()
    });
    assert!(breaches.is_empty(), "{}", breaches.join("\n"));
}

#[test]
fn one_name_per_file_within_a_crate() {
    let breaches = each_crate(|_, sources| duplicate_stems(sources));
    assert!(
        breaches.is_empty(),
        "files of one crate sharing a name:\n{}",
        breaches.join("\n")
    );
}

/// The engines `runtime configure` knows are one table (`ENGINES`) in ctk;
/// no other file of ctk chooses by an engine's name (`"docker" =>`).
fn engine_table_breaches(sources: &[Source]) -> Vec<String> {
    let tables: Vec<&Source> = sources
        .iter()
        .filter(|s| {
            s.text.lines().any(|l| {
                let t = l.trim_start();
                t.starts_with("pub const ENGINES") || t.starts_with("pub static ENGINES")
            })
        })
        .collect();
    let [table] = tables[..] else {
        let files: Vec<String> = tables.iter().map(|s| s.rel.display().to_string()).collect();
        return vec![format!(
            "expected one `pub const ENGINES` table, found {}: {files:?}",
            tables.len()
        )];
    };
    let names: Vec<&str> = table
        .text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("name: \""))
        .filter_map(|l| l.split('"').next())
        .collect();
    if names.is_empty() {
        return vec![format!(
            "{}: ENGINES has no `name: \"…\"` rows",
            table.rel.display()
        )];
    }
    sources
        .iter()
        .filter(|s| !s.test_only && s.rel != table.rel)
        .flat_map(|s| {
            names
                .iter()
                .filter(move |n| s.text.contains(&format!("\"{n}\" =>")))
                .map(move |n| {
                    format!(
                        "{}: chooses by the engine name {n:?} outside ENGINES",
                        s.rel.display()
                    )
                })
        })
        .collect()
}

#[test]
fn one_engine_table() {
    let sources = crate_sources(&repo().join("ctk/src"));
    let breaches = engine_table_breaches(&sources);
    assert!(breaches.is_empty(), "{}", breaches.join("\n"));
}

/// Files whose first line is not a `//!` contract (CONTRIBUTING: "a
/// contract at the top of every file").
fn missing_contracts(sources: &[Source]) -> Vec<String> {
    sources
        .iter()
        .filter(|s| !s.text.starts_with("//!"))
        .map(|s| format!("{}: no `//!` contract on its first line", s.rel.display()))
        .collect()
}

#[test]
fn every_file_starts_with_its_contract() {
    let breaches = each_crate(|_, sources| missing_contracts(sources));
    assert!(breaches.is_empty(), "{}", breaches.join("\n"));
}

/// Self-tests: each check on a made-up crate that breaks it.
mod self_tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> (tempfile::TempDir, Vec<Source>) {
        let dir = tempfile::tempdir().expect("tempdir");
        for (rel, text) in files {
            let p = dir.path().join(rel);
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs::write(&p, text).expect("write");
        }
        let sources = crate_sources(dir.path());
        (dir, sources)
    }

    #[test]
    fn code_lines_skip_comments_blanks_and_the_tests_block() {
        let text =
            "//! doc\n\nfn a() {}\n// c\nfn b() {}\n#[cfg(test)]\nmod tests {\n fn t() {}\n}\n";
        assert_eq!(code_lines(text), 2);
        let big = "fn f() {}\n".repeat(MAX_CODE_LINES + 1);
        assert!(code_lines(&big) > MAX_CODE_LINES);
    }

    #[test]
    fn unsafe_outside_sys_is_found_and_inside_is_not() {
        let (_d, s) = tree(&[
            (
                "lib.rs",
                "#![deny(unsafe_code)]\n#[allow(unsafe_code)]\nmod sys;\nmod a;\n",
            ),
            ("sys.rs", "pub fn f() { unsafe { g() } }\n"),
            (
                "a.rs",
                "// unsafe in a comment\nfn h() { unsafe { g() } }\n",
            ),
        ]);
        assert_eq!(
            unsafe_breaches(&s),
            vec!["a.rs:2: `unsafe` outside a sys/ffi module"]
        );
        let (_d, s) = tree(&[
            ("lib.rs", "#[allow(unsafe_code)]\nmod a;\n"),
            ("a.rs", "fn h() {}\n"),
        ]);
        let b = unsafe_breaches(&s);
        assert!(
            b.iter()
                .any(|x| x.contains("without #![deny(unsafe_code)]")),
            "{b:?}"
        );
        assert!(b.iter().any(|x| x.contains("not on a `mod sys;`")), "{b:?}");
        let (_d, s) = tree(&[("bin/tool/main.rs", "fn main() {}\n")]);
        assert_eq!(unsafe_breaches(&s).len(), 1);
    }

    #[test]
    fn circles_are_found_through_use_inline_paths_and_super() {
        let (_d, s) = tree(&[
            ("lib.rs", "mod a;\nmod b;\nmod c;\n"),
            (
                "a.rs",
                "use crate::b::{x, y as z};\nfn m() { log(\"cannot use {v}; y\") }\n",
            ),
            ("b.rs", "fn f() { crate::c::g() }\n"),
            ("c.rs", "use super::a;\n"),
        ]);
        assert_eq!(circles(&s), vec![vec!["a", "b", "c"]]);
        // Re-exports and one-way imports are no circle.
        let (_d, s) = tree(&[
            ("lib.rs", "mod a;\npub use a::x;\n"),
            ("a.rs", "use crate::Thing;\n"),
            ("d/mod.rs", "mod e;\n"),
            ("d/e.rs", "use super::super::a::x;\n"),
        ]);
        assert!(circles(&s).is_empty(), "{:?}", circles(&s));
        // A parent that calls into its child while the child imports the parent.
        let (_d, s) = tree(&[
            ("lib.rs", "mod d;\n"),
            ("d/mod.rs", "mod e;\nfn f() { e::g(); self::e::g() }\n"),
            ("d/e.rs", "use super::f;\n"),
        ]);
        assert_eq!(circles(&s), vec![vec!["d", "d::e"]]);
    }

    #[test]
    fn static_switches_and_test_only_files() {
        let (_d, s) = tree(&[
            ("lib.rs", "#[cfg(test)]\nmod fake;\nmod a;\n"),
            (
                "a.rs",
                "pub static NO_X: AtomicBool = AtomicBool::new(false);\nstatic OK: &str = \"\";\n",
            ),
            ("fake.rs", "static mut Y: u8 = 0;\n"),
        ]);
        let found: Vec<String> = s
            .iter()
            .filter(|s| !s.test_only)
            .flat_map(static_switches)
            .collect();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("a.rs:1:"), "{found:?}");
    }

    #[test]
    fn engine_names_chosen_outside_the_table_are_found() {
        let table = "pub const ENGINES: &[EngineDef] = &[\n    EngineDef {\n        name: \"docker\",\n    },\n];\n";
        let (_d, s) = tree(&[
            ("table.rs", table),
            (
                "a.rs",
                "fn f(x: &str) { match x { \"docker\" => {} _ => {} } }\n",
            ),
        ]);
        assert_eq!(
            engine_table_breaches(&s),
            vec!["a.rs: chooses by the engine name \"docker\" outside ENGINES"]
        );
        let (_d, s) = tree(&[("table.rs", table), ("b.rs", table)]);
        assert_eq!(engine_table_breaches(&s).len(), 1);
        let (_d, s) = tree(&[("table.rs", table)]);
        assert!(engine_table_breaches(&s).is_empty());
    }

    #[test]
    fn files_without_a_contract_are_found() {
        let (_d, s) = tree(&[
            ("lib.rs", "//! The crate.\nmod a;\n"),
            ("a.rs", "// not a contract\n"),
        ]);
        assert_eq!(
            missing_contracts(&s),
            vec!["a.rs: no `//!` contract on its first line"]
        );
    }

    #[test]
    fn duplicate_stems_are_found() {
        let (_d, s) = tree(&[
            ("lib.rs", "mod a;\nmod spec;\n"),
            ("spec.rs", ""),
            ("a/mod.rs", "mod spec;\nmod sys;\n"),
            ("a/spec.rs", ""),
            ("a/sys.rs", ""),
            ("sys.rs", ""),
        ]);
        assert_eq!(duplicate_stems(&s), vec!["spec: a/spec.rs, spec.rs"]);
    }
}
