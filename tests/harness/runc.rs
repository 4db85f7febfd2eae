//! Running real runc containers on fake hardware (see tests/fakehw/).
