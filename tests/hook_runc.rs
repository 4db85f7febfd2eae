//! End-to-end tests of amd-container-hook under real runc (see harness/runc.rs).
