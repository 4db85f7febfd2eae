//! containerd's `imports`: the files it merges over config.toml (later files
//! win), resolved and read as containerd does, so that the runtime whose
//! settings we copy is seen whole and imports that change what containerd
//! makes of our edit are reported.
//!
//! Contract: reads only; a file that cannot be read or parsed is a warning,
//! never an error, and at most [`MAX_IMPORTS`] files are read.

use super::super::runtime_edit::RUNTIME_NAME;
use super::glob::expand;
use std::path::{Path, PathBuf};
use toml_edit::{DocumentMut, Item, TableLike};

/// The CRI runtime plugin of each config version.
pub fn cri_plugin(version: i64) -> &'static str {
    match version {
        1 => "cri",
        2 => "io.containerd.grpc.v1.cri",
        _ => "io.containerd.cri.v1.runtime",
    }
}

/// A file named by `imports` (directly or through another import).
pub struct Imported {
    pub path: PathBuf,
    doc: DocumentMut,
    /// The CRI runtime plugin of the file's own config version.
    plugin: &'static str,
}

impl Imported {
    fn cri(&self) -> Option<&Item> {
        self.doc.get("plugins")?.get(self.plugin)
    }

    pub fn containerd(&self) -> Option<&Item> {
        self.cri()?.get("containerd")
    }

    pub fn runtimes(&self) -> Option<&dyn TableLike> {
        self.containerd()?.get("runtimes")?.as_table_like()
    }
}

/// At most this many imported files are read (containerd has no limit; a
/// cycle or a glob gone wild should not hang us).
const MAX_IMPORTS: usize = 64;

/// `imports` of `doc` resolved as containerd does: a relative path is
/// relative to the importing file's directory, `*` patterns are expanded
/// (sorted), imports of imports follow. Files that cannot be read or parsed
/// are reported in `warnings` and skipped.
pub fn load_imports(doc: &DocumentMut, path: &Path, warnings: &mut Vec<String>) -> Vec<Imported> {
    let mut out: Vec<Imported> = Vec::new();
    let mut seen = vec![path.to_path_buf()];
    let mut pending = import_paths(doc, path, warnings);
    let mut i = 0;
    while i < pending.len() {
        let file = pending[i].clone();
        i += 1;
        if seen.contains(&file) {
            continue;
        }
        seen.push(file.clone());
        if out.len() >= MAX_IMPORTS {
            warnings.push(format!(
                "{}: more than {MAX_IMPORTS} imported files; the others were not read",
                path.display()
            ));
            break;
        }
        let unread = |why: String| {
            format!(
                "cannot read {} (imported by {}): {why}; if it configures the runc runtime, \
                 check that runtime amd has its options (SystemdCgroup) too",
                file.display(),
                path.display()
            )
        };
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                warnings.push(unread(e.to_string()));
                continue;
            }
        };
        let idoc: DocumentMut = match text.parse() {
            Ok(d) => d,
            Err(e) => {
                warnings.push(unread(format!("not valid TOML: {e}")));
                continue;
            }
        };
        let version = idoc.get("version").and_then(Item::as_integer).unwrap_or(1);
        pending.extend(import_paths(&idoc, &file, warnings));
        out.push(Imported {
            path: file,
            doc: idoc,
            plugin: cri_plugin(version),
        });
    }
    out
}

/// The paths one file's `imports` names, patterns expanded.
fn import_paths(doc: &DocumentMut, path: &Path, warnings: &mut Vec<String>) -> Vec<PathBuf> {
    let Some(item) = doc.get("imports") else {
        return Vec::new();
    };
    let Some(list) = item.as_array() else {
        warnings.push(format!(
            "{}: imports is not a list of paths; imported files were not read",
            path.display()
        ));
        return Vec::new();
    };
    let base = path.parent().unwrap_or(Path::new("/"));
    let mut out = Vec::new();
    for entry in list.iter() {
        let Some(p) = entry.as_str() else {
            warnings.push(format!(
                "{}: imports entry {} is not a string; skipped",
                path.display(),
                entry.to_string().trim()
            ));
            continue;
        };
        let p = base.join(p);
        if !p.to_string_lossy().contains('*') {
            out.push(p);
            continue;
        }
        match expand(&p) {
            Some(found) => out.extend(found),
            None => warnings.push(format!(
                "{}: cannot expand the import pattern {} (only the file name may hold \
                 wildcards here); the files it names were not read",
                path.display(),
                p.display()
            )),
        }
    }
    out
}

/// Warnings about imports that change what containerd makes of our edit.
pub fn warn_about_imports(imports: &[Imported], plugin: &str, warnings: &mut Vec<String>) {
    for imp in imports {
        if imp.plugin == plugin && imp.cri().is_some() {
            warnings.push(format!(
                "the imported file {} configures [plugins.{plugin:?}] too: containerd 2.x merges \
                 it over this file, containerd 1.x replaces this file's section with it (runtime \
                 amd then is not seen); check with `containerd config dump`",
                imp.path.display()
            ));
        }
        if imp.runtimes().is_some_and(|r| r.contains_key(RUNTIME_NAME)) {
            warnings.push(format!(
                "the imported file {} defines a runtime {RUNTIME_NAME:?} too, which overrides \
                 the one in this file",
                imp.path.display()
            ));
        }
    }
}
