//! Non-root container users and the host's device nodes.
//!
//! On many hosts `/dev/kfd` and `/dev/dri/renderD*` are `0660 root:render`:
//! a container whose process runs as uid 1000 could not open the nodes it is
//! given. This module decides, per node, whether the container's user needs
//! a grant, and what grant the appliers make:
//!
//! - spec-level paths (precreate, `amd-container-runtime`, CDI) add the
//!   node's host gid to the process's `additionalGids` ([`groups_to_add`]);
//! - the live hook, whose container process already has its groups, gives
//!   the node it creates in the container's own `/dev` the process's primary
//!   gid ([`Grant::Group`] from [`grant`]).
//!
//! Contract: only the kinds the admin chose (`[devices] user-access`,
//! default kfd and render) are considered; uid 0 never needs a grant; a node
//! whose group is gid 0 (root) is never granted (the caller warns); the
//! host's mode bits are never widened. Pure functions: nothing here touches
//! a file.

use crate::hardware::DeviceNode;
use serde::Deserialize;
use std::collections::BTreeSet;

/// The kinds of node a container gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// `/dev/kfd`, the compute interface.
    Kfd,
    /// `/dev/dri/renderD*`.
    Render,
    /// `/dev/dri/card*` (KMS).
    Card,
}

impl NodeKind {
    /// The kind of `node`, from its file name; `None` for anything else.
    pub fn of(node: &DeviceNode) -> Option<NodeKind> {
        let name = node.path.file_name()?.to_str()?;
        if name == "kfd" {
            Some(NodeKind::Kfd)
        } else if name.starts_with("renderD") {
            Some(NodeKind::Render)
        } else if name.starts_with("card") {
            Some(NodeKind::Card)
        } else {
            None
        }
    }

    /// The default of `[devices] user-access`: kfd and render; card nodes
    /// keep the host's policy.
    pub fn default_user_access() -> Vec<NodeKind> {
        vec![NodeKind::Kfd, NodeKind::Render]
    }
}

/// The container process's identity (`process.user` of the OCI spec).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ProcessUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

impl ProcessUser {
    fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.additional_gids.contains(&gid)
    }
}

/// Could `user` read and write `node` with the node's mode, owner and group
/// (the kernel's order: owner bits if the uid matches, else group bits if a
/// group matches, else other bits)? Root always can.
pub fn can_read_write(node: &DeviceNode, user: &ProcessUser) -> bool {
    const RW: u32 = 0o6;
    if user.uid == 0 {
        return true;
    }
    let bits = if node.uid == user.uid {
        node.mode >> 6
    } else if user.in_group(node.gid) {
        node.mode >> 3
    } else {
        node.mode
    };
    bits & RW == RW
}

/// What a node needs for a container's user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// Nothing: the user can use it, or its kind keeps the host's policy.
    None,
    /// Membership of this (host) group gives the user read and write.
    Group(u32),
    /// The user cannot use it and no group would help that may be given:
    /// the node's group is root's (gid 0), its group bits are not rw, or
    /// the user owns it without owner rw. The caller warns.
    Refused,
}

/// The grant `node` needs for `user` under the admin's `kinds`.
pub fn grant(node: &DeviceNode, user: &ProcessUser, kinds: &[NodeKind]) -> Grant {
    let wanted = NodeKind::of(node).is_some_and(|k| kinds.contains(&k));
    if !wanted || can_read_write(node, user) {
        return Grant::None;
    }
    if node.gid == 0 || node.uid == user.uid || node.mode & 0o060 != 0o060 {
        return Grant::Refused;
    }
    Grant::Group(node.gid)
}

/// The result of [`groups_to_add`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupGrants<'a> {
    /// Host gids to add to the user's groups, sorted, without those the
    /// user already has.
    pub gids: Vec<u32>,
    /// Nodes the user cannot use and that no group may be given for.
    pub refused: Vec<&'a DeviceNode>,
}

/// The supplementary groups `user` needs for `nodes` (a spec-level edit:
/// precreate, the Docker entry).
pub fn groups_to_add<'a>(
    nodes: &'a [DeviceNode],
    user: &ProcessUser,
    kinds: &[NodeKind],
) -> GroupGrants<'a> {
    let mut gids = BTreeSet::new();
    let mut refused = Vec::new();
    for node in nodes {
        match grant(node, user, kinds) {
            Grant::None => {}
            Grant::Group(gid) => {
                gids.insert(gid);
            }
            Grant::Refused => refused.push(node),
        }
    }
    GroupGrants {
        gids: gids.into_iter().collect(),
        refused,
    }
}

/// The groups a CDI spec gives every container using it: the gids of
/// `nodes` of the admin's `kinds` that are not world-rw, whose group has rw
/// and is not root's; sorted, once each. (A CDI spec does not know the
/// container's user, so it grants whenever a non-root user could need it.)
pub fn cdi_gids(nodes: &[DeviceNode], kinds: &[NodeKind]) -> Vec<u32> {
    let gids: BTreeSet<u32> = nodes
        .iter()
        .filter(|n| NodeKind::of(n).is_some_and(|k| kinds.contains(&k)))
        .filter(|n| n.mode & 0o006 != 0o006 && n.mode & 0o060 == 0o060 && n.gid != 0)
        .map(|n| n.gid)
        .collect();
    gids.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(path: &str, mode: u32, uid: u32, gid: u32) -> DeviceNode {
        DeviceNode {
            path: path.into(),
            major: 226,
            minor: 128,
            mode,
            uid,
            gid,
        }
    }

    fn user(uid: u32, gid: u32, extra: &[u32]) -> ProcessUser {
        ProcessUser {
            uid,
            gid,
            additional_gids: extra.to_vec(),
        }
    }

    const KR: &[NodeKind] = &[NodeKind::Kfd, NodeKind::Render];

    #[test]
    fn kinds_from_the_file_name() {
        let k = |p| NodeKind::of(&node(p, 0o660, 0, 0));
        assert_eq!(k("/dev/kfd"), Some(NodeKind::Kfd));
        assert_eq!(k("/dev/dri/renderD128"), Some(NodeKind::Render));
        assert_eq!(k("/dev/dri/card1"), Some(NodeKind::Card));
        assert_eq!(k("/dev/null"), None);
    }

    #[test]
    fn root_and_world_rw_need_nothing() {
        let strict = node("/dev/kfd", 0o660, 0, 109);
        assert_eq!(grant(&strict, &user(0, 0, &[]), KR), Grant::None);
        let open = node("/dev/kfd", 0o666, 0, 109);
        assert_eq!(grant(&open, &user(1000, 1000, &[]), KR), Grant::None);
    }

    #[test]
    fn group_bits_need_the_nodes_group() {
        let n = node("/dev/dri/renderD128", 0o660, 0, 109);
        assert_eq!(grant(&n, &user(1000, 1000, &[]), KR), Grant::Group(109));
        // Already in the group (primary or supplementary): nothing.
        assert_eq!(grant(&n, &user(1000, 109, &[]), KR), Grant::None);
        assert_eq!(grant(&n, &user(1000, 1000, &[5, 109]), KR), Grant::None);
    }

    #[test]
    fn owner_bits_decide_for_the_owner() {
        // Owned by the user with rw: fine, whatever the group.
        let n = node("/dev/kfd", 0o600, 1000, 109);
        assert_eq!(grant(&n, &user(1000, 1000, &[]), KR), Grant::None);
        // Owned by the user without owner rw: a group would not help.
        let n = node("/dev/kfd", 0o060, 1000, 109);
        assert_eq!(grant(&n, &user(1000, 1000, &[109]), KR), Grant::Refused);
    }

    #[test]
    fn root_group_and_groupless_modes_are_refused() {
        let n = node("/dev/kfd", 0o660, 0, 0);
        assert_eq!(grant(&n, &user(1000, 1000, &[]), KR), Grant::Refused);
        let n = node("/dev/kfd", 0o600, 0, 109);
        assert_eq!(grant(&n, &user(1000, 1000, &[]), KR), Grant::Refused);
        // Read-only for the group is not enough either.
        let n = node("/dev/kfd", 0o640, 0, 109);
        assert_eq!(grant(&n, &user(1000, 1000, &[]), KR), Grant::Refused);
    }

    #[test]
    fn other_bits_count() {
        let n = node("/dev/kfd", 0o606, 0, 0);
        assert_eq!(grant(&n, &user(1000, 1000, &[]), KR), Grant::None);
        // ... unless a group match takes the group bits first (kernel order).
        let n = node("/dev/kfd", 0o606, 0, 1000);
        assert_eq!(grant(&n, &user(1000, 1000, &[]), KR), Grant::Refused);
    }

    #[test]
    fn card_keeps_host_policy_unless_configured_and_empty_means_none() {
        let card = node("/dev/dri/card1", 0o660, 0, 44);
        let u = user(1000, 1000, &[]);
        assert_eq!(grant(&card, &u, KR), Grant::None);
        assert_eq!(grant(&card, &u, &[NodeKind::Card]), Grant::Group(44));
        let kfd = node("/dev/kfd", 0o660, 0, 109);
        assert_eq!(grant(&kfd, &u, &[]), Grant::None);
    }

    #[test]
    fn groups_to_add_sorted_once_and_refusals_named() {
        let nodes = [
            node("/dev/kfd", 0o660, 0, 110),
            node("/dev/dri/card1", 0o660, 0, 44),
            node("/dev/dri/renderD128", 0o660, 0, 109),
            node("/dev/dri/renderD129", 0o660, 0, 109),
            node("/dev/dri/renderD130", 0o660, 0, 0),
        ];
        let g = groups_to_add(&nodes, &user(1000, 1000, &[]), KR);
        assert_eq!(g.gids, [109, 110]);
        assert_eq!(g.refused, [&nodes[4]]);
        assert_eq!(
            groups_to_add(&nodes, &user(0, 0, &[]), KR),
            GroupGrants::default()
        );
    }

    #[test]
    fn cdi_gids_skip_world_rw_root_group_and_unconfigured_kinds() {
        let nodes = [
            node("/dev/kfd", 0o666, 0, 110),
            node("/dev/dri/card1", 0o660, 0, 44),
            node("/dev/dri/renderD128", 0o660, 0, 109),
            node("/dev/dri/renderD129", 0o660, 0, 0),
        ];
        assert_eq!(cdi_gids(&nodes, KR), [109]);
        assert_eq!(
            cdi_gids(&nodes, &[NodeKind::Card, NodeKind::Render]),
            [44, 109]
        );
        assert!(cdi_gids(&nodes, &[]).is_empty());
    }
}
