//! The container-spec layer: the one place the hook reads and writes a
//! container's OCI runtime spec (`config.json`).
//!
//! - [`view`]: the lean typed read (environment, root, device rules, the
//!   process user, privilege) and each predicate on them, written once;
//! - [`edit`]: writes on the spec held as a JSON document (devices, device
//!   cgroup rules, additional groups, hooks), keeping key order;
//! - [`json_slot`]: the object or array at a key, created when absent.
//!
//! Contract: data flows one way: `edit` uses `json_slot` and `view`;
//! nothing here imports from its callers (the stages, the Docker entry).
//! Reading the bundle's files (the state, config.json's bytes) is
//! `container`'s.

pub mod edit;
pub mod json_slot;
pub mod view;
