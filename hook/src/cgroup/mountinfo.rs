//! Just enough of /proc/self/mountinfo to find a cgroup hierarchy's mount.

use std::path::PathBuf;

pub struct Mount {
    pub root: String,
    pub mount_point: String,
    pub fstype: String,
    pub super_options: String,
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let mut post = post.split(' ');
            let fstype = post.next()?.to_string();
            let _source = post.next()?;
            Some(Mount {
                root: unescape(pre.get(3)?),
                mount_point: unescape(pre.get(4)?),
                fstype,
                super_options: post.next().unwrap_or("").to_string(),
            })
        })
        .collect()
}

/// The directory of cgroup `rel` (as in /proc/PID/cgroup) in the first mount
/// accepted by `wanted` whose root contains it; the last such mount wins, as
/// later mounts shadow earlier ones.
pub fn resolve(mounts: &[Mount], rel: &str, wanted: impl Fn(&Mount) -> bool) -> Option<PathBuf> {
    mounts.iter().rev().filter(|m| wanted(m)).find_map(|m| {
        let inner = if m.root == "/" {
            rel
        } else {
            let rest = rel.strip_prefix(m.root.as_str())?;
            if !(rest.is_empty() || rest.starts_with('/')) {
                return None;
            }
            rest
        };
        let mut p = PathBuf::from(&m.mount_point);
        p.push(inner.trim_start_matches('/'));
        Some(p)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
30 25 0:26 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs ro,mode=755
35 30 0:31 / /sys/fs/cgroup/devices rw,nosuid shared:15 - cgroup cgroup rw,devices
36 30 0:32 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate
40 25 0:33 /docker /my\\040cg rw - cgroup2 cgroup2 rw
";

    #[test]
    fn finds_v1_devices_and_v2() {
        let m = parse(SAMPLE);
        let v1 = resolve(&m, "/runc/abc", |m| {
            m.fstype == "cgroup" && m.super_options.contains("devices")
        });
        assert_eq!(
            v1.unwrap(),
            PathBuf::from("/sys/fs/cgroup/devices/runc/abc")
        );
        let v2 = resolve(&m, "/docker/x", |m| m.fstype == "cgroup2");
        assert_eq!(v2.unwrap(), PathBuf::from("/my cg/x"));
        let v2b = resolve(&m, "/other", |m| m.fstype == "cgroup2");
        assert_eq!(v2b.unwrap(), PathBuf::from("/sys/fs/cgroup/unified/other"));
    }
}
