//! CRI-O: the hooks directory is `[crio.runtime] hooks_dir`, a list whose
//! default is /usr/share/containers/oci/hooks.d (later entries take
//! precedence; a drop-in in /etc/crio/crio.conf.d replaces the whole list).
//! For a non-default directory we write our own drop-in with the list in
//! force before it plus our directory.

use super::file_edit::Change;
use super::hooks_dir::DEFAULT_DIR;
use crate::CliError;
use std::path::Path;

pub const DEFAULT_DROP_IN: &str = "/etc/crio/crio.conf.d/99-amd-container-toolkit.conf";

/// `[crio.runtime] hooks_dir` of a CRI-O config file, if it sets one.
fn hooks_dir_of(text: &str) -> Option<Vec<String>> {
    let doc: toml_edit::DocumentMut = text.parse().ok()?;
    let list = doc
        .get("crio")?
        .get("runtime")?
        .get("hooks_dir")?
        .as_array()?;
    Some(
        list.iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
    )
}

/// The `hooks_dir` CRI-O would use without our drop-in: the last one set by
/// `crio.conf` (beside the drop-in directory) or a drop-in sorted before
/// ours, else CRI-O's default.
pub fn hooks_dirs_before(drop_in: &Path) -> Vec<String> {
    let mut found = None;
    let Some(conf_d) = drop_in.parent() else {
        return vec![DEFAULT_DIR.to_string()];
    };
    let ours = drop_in.file_name().unwrap_or_default();
    if let Some(main) = conf_d.parent().map(|p| p.join("crio.conf")) {
        if let Ok(text) = std::fs::read_to_string(main) {
            found = hooks_dir_of(&text).or(found);
        }
    }
    let mut names: Vec<_> = std::fs::read_dir(conf_d)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .filter(|n| n.as_os_str() < ours && n.to_string_lossy().ends_with(".conf"))
        .collect();
    names.sort();
    for name in names {
        if let Ok(text) = std::fs::read_to_string(conf_d.join(name)) {
            found = hooks_dir_of(&text).or(found);
        }
    }
    found.unwrap_or_else(|| vec![DEFAULT_DIR.to_string()])
}

/// The drop-in's text: the earlier list with `dir` last (highest precedence).
pub fn drop_in_content(before: &[String], dir: &str) -> String {
    let mut dirs: Vec<&str> = before
        .iter()
        .map(String::as_str)
        .filter(|d| *d != dir)
        .collect();
    dirs.push(dir);
    let mut out = String::from(
        "# Written by `amd-ctk runtime configure --runtime crio`: the hooks directory of the\n\
         # AMD container toolkit, after the ones CRI-O used before. `amd-ctk runtime configure\n\
         # --runtime crio --remove` deletes this file.\n\
         [crio.runtime]\nhooks_dir = [\n",
    );
    for d in dirs {
        out.push_str(&format!("  {},\n", toml_edit::Value::from(d)));
    }
    out.push_str("]\n");
    out
}

pub fn plan_drop_in(current: Option<&[u8]>, want: &str) -> Result<(Change, ()), CliError> {
    super::hooks_dir::plan_install(current, want.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::super::file_edit::testutil::TempDir;
    use super::*;
    use std::fs;

    #[test]
    fn drop_in_lists_default_then_ours() {
        let d = TempDir::new("crio-default");
        let drop_in = d.path().join("crio.conf.d/99-amd-container-toolkit.conf");
        let before = hooks_dirs_before(&drop_in);
        assert_eq!(before, [DEFAULT_DIR]);
        let text = drop_in_content(&before, "/opt/hooks.d");
        assert_eq!(
            text.lines()
                .skip_while(|l| l.starts_with('#'))
                .collect::<Vec<_>>(),
            [
                "[crio.runtime]",
                "hooks_dir = [",
                "  \"/usr/share/containers/oci/hooks.d\",",
                "  \"/opt/hooks.d\",",
                "]"
            ]
        );
        assert_eq!(hooks_dir_of(&text).unwrap(), [DEFAULT_DIR, "/opt/hooks.d"]);
    }

    #[test]
    fn drop_in_keeps_the_list_in_force() {
        let d = TempDir::new("crio-list");
        fs::create_dir_all(d.path().join("crio.conf.d")).unwrap();
        fs::write(
            d.path().join("crio.conf"),
            "[crio]\n[crio.runtime]\n# site hooks\nhooks_dir = [\"/etc/containers/oci/hooks.d\"]\n",
        )
        .unwrap();
        let drop_in = d.path().join("crio.conf.d/99-amd-container-toolkit.conf");
        assert_eq!(hooks_dirs_before(&drop_in), ["/etc/containers/oci/hooks.d"]);
        // A drop-in sorted before ours overrides crio.conf; one after it does not count.
        fs::write(
            d.path().join("crio.conf.d/10-site.conf"),
            "[crio.runtime]\nhooks_dir = [\"/a\", \"/b\"]\n",
        )
        .unwrap();
        fs::write(
            d.path().join("crio.conf.d/99-zzz.conf"),
            "[crio.runtime]\nhooks_dir = [\"/z\"]\n",
        )
        .unwrap();
        fs::write(
            d.path().join("crio.conf.d/20-other.conf"),
            "[crio.api]\nlisten = \"x\"\n",
        )
        .unwrap();
        let before = hooks_dirs_before(&drop_in);
        assert_eq!(before, ["/a", "/b"]);
        // Our directory once, last.
        let text = drop_in_content(&["/a".into(), "/opt/h".into(), "/b".into()], "/opt/h");
        assert_eq!(hooks_dir_of(&text).unwrap(), ["/a", "/b", "/opt/h"]);
        // Quotes and backslashes stay valid TOML.
        let text = drop_in_content(&before, "/opt/we\"ird\\dir");
        assert_eq!(
            hooks_dir_of(&text).unwrap(),
            ["/a", "/b", "/opt/we\"ird\\dir"]
        );
    }
}
