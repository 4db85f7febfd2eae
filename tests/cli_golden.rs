//! Golden-output tests of amd-ctk against the umockdev fixtures.
