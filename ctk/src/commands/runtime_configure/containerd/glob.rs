//! Shell-style patterns in containerd's `imports` (`*`, `?`, `[...]`, `\\`),
//! matched as Go's filepath.Glob does, for the last path component only.
//!
//! Contract: pure except [`expand`], which lists one directory; a malformed
//! pattern matches nothing; matching is linear-ish (backtracking on the last
//! `*` only).

use std::path::{Path, PathBuf};

fn has_wildcard(s: &[u8]) -> bool {
    s.iter().any(|b| matches!(b, b'*' | b'?' | b'['))
}

/// The files matching `pattern`, whose wildcards must be in the last
/// component; sorted like Go's filepath.Glob. `None`: not expandable.
pub fn expand(pattern: &Path) -> Option<Vec<PathBuf>> {
    use std::os::unix::ffi::OsStrExt;
    let dir = pattern.parent()?;
    let name = pattern.file_name()?.as_bytes();
    if has_wildcard(dir.as_os_str().as_bytes()) {
        return None;
    }
    let mut names: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.file_name().as_bytes().to_vec())
        .filter(|n| glob_match(name, n))
        .collect();
    names.sort();
    Some(
        names
            .into_iter()
            .map(|n| dir.join(std::ffi::OsStr::from_bytes(&n)))
            .collect(),
    )
}

/// One step of a pattern: a literal byte, `?`, `*`, or a `[...]` class
/// (with `^`/`!` negation, ranges and `\` escapes), and its length.
fn class_match(pat: &[u8], c: u8) -> Option<(bool, usize)> {
    // pat[0] == b'['
    let mut i = 1;
    let negate = matches!(pat.get(i), Some(b'^' | b'!'));
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    loop {
        let mut lo = *pat.get(i)?;
        if lo == b']' && !first {
            return Some((hit != negate, i + 1));
        }
        first = false;
        if lo == b'\\' {
            i += 1;
            lo = *pat.get(i)?;
        }
        i += 1;
        let mut hi = lo;
        if pat.get(i) == Some(&b'-') && pat.get(i + 1).is_some_and(|b| *b != b']') {
            hi = *pat.get(i + 1)?;
            i += 2;
            if hi == b'\\' {
                hi = *pat.get(i)?;
                i += 1;
            }
        }
        if lo <= c && c <= hi {
            hit = true;
        }
    }
}

/// Shell-style match of a whole file name (`*`, `?`, `[...]`, `\`),
/// linear backtracking on the last `*`. A malformed class matches nothing.
fn glob_match(pat: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let step = match pat.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
                continue;
            }
            Some(b'?') => Some(1),
            Some(b'[') => match class_match(&pat[p..], name[n]) {
                Some((true, len)) => Some(len),
                Some((false, _)) => None,
                None => return false,
            },
            Some(b'\\') if pat.get(p + 1) == Some(&name[n]) => Some(2),
            Some(c) if *c == name[n] && *c != b'\\' => Some(1),
            _ => None,
        };
        match (step, star) {
            (Some(len), _) => {
                p += len;
                n += 1;
            }
            (None, Some((sp, sn))) => {
                star = Some((sp, sn + 1));
                p = sp + 1;
                n = sn + 1;
            }
            (None, None) => return false,
        }
    }
    pat[p..].iter().all(|b| *b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_patterns() {
        for (pat, name, want) in [
            ("*.toml", "a.toml", true),
            ("*.toml", "a.toml.bak", false),
            ("*", ".hidden", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("[a-c]x", "bx", true),
            ("[!a-c]x", "bx", false),
            ("[^a-c]x", "dx", true),
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("*a*b*c", "xxaxxbxxc", true),
            ("*a*b*c", "xxaxxbxx", false),
            ("[abc", "a", false),
            ("", "", true),
            ("**", "", true),
        ] {
            assert_eq!(
                glob_match(pat.as_bytes(), name.as_bytes()),
                want,
                "{pat} {name}"
            );
        }
        // Long inputs stay linear-ish.
        let name = "a".repeat(5000);
        let pat = "*a".repeat(50) + "b";
        assert!(!glob_match(pat.as_bytes(), name.as_bytes()));
    }
}
