//! The KFD topology (`<kfd>/topology/nodes/*/properties`): which render minor
//! belongs to which PCI location and unique id.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

/// The parts of one GPU node of the KFD topology that discovery needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KfdNode {
    pub render_minor: u32,
    pub domain: u32,
    pub location_id: u32,
    /// 0 in the file means "not reported" (old kernels); kept as `None`.
    pub unique_id: Option<u64>,
}

/// Parses one `properties` file (`key value` lines). CPU nodes
/// (`drm_render_minor 0`) yield `None`.
pub fn parse_properties(text: &str) -> Option<KfdNode> {
    let mut render_minor = None;
    let mut domain = 0;
    let mut location_id = None;
    let mut unique_id = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(' ') else {
            continue;
        };
        let value = value.trim();
        match key {
            "drm_render_minor" => render_minor = value.parse::<u32>().ok(),
            "domain" => domain = value.parse().unwrap_or(0),
            "location_id" => location_id = value.parse().ok(),
            "unique_id" => unique_id = value.parse::<u64>().ok().filter(|&v| v != 0),
            _ => {}
        }
    }
    match (render_minor, location_id) {
        (Some(render_minor), Some(location_id)) if render_minor > 0 => Some(KfdNode {
            render_minor,
            domain,
            location_id,
            unique_id,
        }),
        _ => None,
    }
}

/// Reads every GPU node below `<kfd_syspath>/topology/nodes`, keyed by render
/// minor. A missing or unreadable topology gives an empty map: discovery then
/// reports the affected GPUs instead of failing.
pub fn read_topology(kfd_syspath: &Path) -> HashMap<u32, KfdNode> {
    let mut nodes = HashMap::new();
    let dir = kfd_syspath.join("topology/nodes");
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) => {
            log::warn!("cannot read KFD topology {}: {e}", dir.display());
            return nodes;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path().join("properties");
        match super::discover::read_attr(&path) {
            Ok(text) => {
                if let Some(node) = parse_properties(&text) {
                    nodes.insert(node.render_minor, node);
                }
            }
            Err(e) => log::warn!("cannot read {}: {e}", path.display()),
        }
    }
    nodes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_node() {
        let text = "cpu_cores_count 0\nsimd_count 304\nlocation_id 1280\ndomain 0\n\
                    drm_render_minor 128\nunique_id 5526920818386247426\n";
        assert_eq!(
            parse_properties(text),
            Some(KfdNode {
                render_minor: 128,
                domain: 0,
                location_id: 1280,
                unique_id: Some(5526920818386247426)
            })
        );
    }

    #[test]
    fn cpu_node_is_skipped() {
        let text = "cpu_cores_count 64\nsimd_count 0\nlocation_id 0\ndrm_render_minor 0\n";
        assert_eq!(parse_properties(text), None);
    }

    #[test]
    fn zero_unique_id_is_unknown() {
        let text = "location_id 768\ndrm_render_minor 129\nunique_id 0\n";
        assert_eq!(parse_properties(text).unwrap().unique_id, None);
    }
}
