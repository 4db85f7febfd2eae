//! Writing files the way an admin expects: atomically (temp file in the same
//! directory, written, fsynced, renamed over the destination, directory
//! fsynced), parent directories created, other files untouched. The one
//! atomic writer of the toolkit: `amd-ctk` (CDI specs, engine configs, their
//! backups) and the runtime shim (a bundle's `config.json`) both use it.
//!
//! A file that is replaced keeps its identity as far as a new inode can: its
//! owner, group, mode (set-id bits included) and extended attributes (ACLs,
//! SELinux label) are copied to the temp file before the rename. A temp file
//! is removed on every failure path: a failed write leaves nothing behind.

use crate::sys;
use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of a file that did not exist before.
const NEW_FILE_MODE: u32 = 0o644;

/// A temp file beside its destination, holding the new content with the
/// destination's identity, not yet renamed into place. Dropped without
/// [`Staged::commit`], it is removed.
pub struct Staged {
    tmp: PathBuf,
    path: PathBuf,
    dir: PathBuf,
    committed: bool,
}

impl Staged {
    /// Renames the temp file over the destination (readers see the old or
    /// the new file, never a partial one), then syncs the directory.
    pub fn commit(mut self) -> std::io::Result<()> {
        fs::rename(&self.tmp, &self.path)?;
        self.committed = true;
        // The rename is done: a failed directory sync cannot undo it and is
        // not worth failing the whole edit for.
        if let Err(e) = fs::File::open(&self.dir).and_then(|d| d.sync_all()) {
            log::warn!("cannot sync {}: {e}", self.dir.display());
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Creates a new, hidden temp file beside `path` (`.NAME.tmp-PID-N`).
fn create_temp(dir: &Path, path: &Path) -> std::io::Result<(fs::File, PathBuf)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut n = 0u32;
    loop {
        let tmp = dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(f) => return Ok((f, tmp)),
            // A leftover of a killed run with our pid: take the next name.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 100 => n += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Writes `contents` to a temp file beside `path` that has `path`'s owner,
/// group, mode and extended attributes (a new file: the caller's, mode 0644).
/// Creates the parent directories.
pub fn stage(path: &Path, contents: &[u8]) -> std::io::Result<Staged> {
    stage_like(path, contents, path)
}

/// [`stage`], with the identity of the file `like` (for a backup: the
/// original's), or of a new file if `like` does not exist.
pub fn stage_like(path: &Path, contents: &[u8], like: &Path) -> std::io::Result<Staged> {
    stage_with(path, contents, like, NEW_FILE_MODE, 0o7777)
}

/// [`stage`] for a file only its owner may read (the toolkit's own state):
/// a new file gets mode 0600, an existing one keeps its owner, group and
/// extended attributes but loses every group and other permission.
pub fn stage_private(path: &Path, contents: &[u8]) -> std::io::Result<Staged> {
    stage_with(path, contents, path, 0o600, 0o7700)
}

/// `new_mode`: the mode of a file that did not exist; `keep`: the mode bits
/// of an existing `like` that the new file keeps.
fn stage_with(
    path: &Path,
    contents: &[u8],
    like: &Path,
    new_mode: u32,
    keep: u32,
) -> std::io::Result<Staged> {
    let dir = parent_dir(path);
    fs::create_dir_all(&dir)?;
    let old = match fs::metadata(like) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let (mut f, tmp) = create_temp(&dir, path)?;
    let staged = Staged {
        tmp,
        path: path.to_path_buf(),
        dir,
        committed: false,
    };
    match &old {
        Some(meta) => {
            copy_identity(like, meta, &f)?;
            if meta.mode() & 0o7777 & !keep != 0 {
                f.set_permissions(fs::Permissions::from_mode(meta.mode() & keep))?;
            }
        }
        None => f.set_permissions(fs::Permissions::from_mode(new_mode))?,
    }
    f.write_all(contents)?;
    f.sync_all()?;
    Ok(staged)
}

/// Replaces `path` with `contents` atomically, keeping the old file's
/// owner, group, mode and extended attributes (a new file gets 0644).
pub fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    stage(path, contents)?.commit()
}

/// Gives `to` the owner, group, mode and extended attributes of `from`
/// (whose metadata is `meta`). The mode is set after the owner: chown clears
/// the set-id bits.
pub fn copy_identity(from: &Path, meta: &fs::Metadata, to: &fs::File) -> std::io::Result<()> {
    std::os::unix::fs::fchown(to, Some(meta.uid()), Some(meta.gid()))?;
    copy_xattrs(from, to)?;
    to.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))
}

/// Copies every extended attribute of `from` to `to`. A filesystem without
/// extended attributes has nothing to copy.
fn copy_xattrs(from: &Path, to: &fs::File) -> std::io::Result<()> {
    let c_from = CString::new(from.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let names = match sys::xattr_list(&c_from) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(()),
        Err(e) => return Err(e),
    };
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let Ok(c_name) = CString::new(name) else {
            continue;
        };
        let value = match sys::xattr_get(&c_from, &c_name) {
            Ok(v) => v,
            // Removed since it was listed.
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => continue,
            Err(e) => return Err(e),
        };
        sys::fxattr_set(to, &c_name, &value).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot copy extended attribute {} to the new file: {e}",
                    String::from_utf8_lossy(name)
                ),
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_creates_parents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/spec.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn keeps_owner_group_mode_and_xattrs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("daemon.json");
        fs::write(&path, "{}").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let root = nix_is_root();
        if root {
            std::os::unix::fs::chown(&path, Some(1234), Some(5678)).unwrap();
        }
        let c_path = CString::new(path.as_os_str().as_bytes()).unwrap();
        let have_xattr =
            sys::fxattr_set(fs::File::open(&path).unwrap(), c"user.amd-ctk-test", b"v1").is_ok();
        write_atomic(&path, b"{\"a\": 1}").unwrap();
        let m = fs::metadata(&path).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o640);
        if root {
            assert_eq!((m.uid(), m.gid()), (1234, 5678));
        }
        if have_xattr {
            assert_eq!(
                sys::xattr_get(&c_path, c"user.amd-ctk-test").unwrap(),
                b"v1".to_vec()
            );
        }
    }

    #[test]
    fn private_files_are_0600_and_loose_ones_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        stage_private(&path, b"1").unwrap().commit().unwrap();
        let mode = || fs::metadata(&path).unwrap().mode() & 0o7777;
        assert_eq!(mode(), 0o600);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        stage_private(&path, b"2").unwrap().commit().unwrap();
        assert_eq!(mode(), 0o600, "an older 0644 file is tightened");
        assert_eq!(fs::read(&path).unwrap(), b"2");
        // The control: the plain writer keeps 0644.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_atomic(&path, b"3").unwrap();
        assert_eq!(mode(), 0o644);
    }

    fn nix_is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }
}
