//! libudev, loaded on first use: the `udev` crate's calls land here and are
//! forwarded to `libudev.so.1`, which is dlopen'd the first time one of them
//! runs (discovery, GPU containers only).
//!
//! Why: `amd-container-hook` runs at every container start on the host, and
//! for nearly all of them it only reads the spec's environment and exits.
//! Linked the ordinary way, the dynamic loader would map and relocate
//! libudev for each of those runs; a second binary for the GPU work (what
//! this replaced) costs an exec, a dynamic-loader run and a runtime start-up
//! per GPU container instead. Defining the libudev symbols the `udev` crate
//! references in this binary resolves them at link time, so the linker
//! (`--as-needed`) drops `libudev.so.1` from the binary's DT_NEEDED list; the
//! e2e suite checks that (`hook_runc::fast_path_binary_links_no_libudev`).
//!
//! Contract: every function it defines (ffi.rs) has the C signature of the
//! libudev function of the same name (libudev.h) and behaves as it does once
//! the library is loaded. When it cannot be loaded, the failure is logged
//! once (with `dlerror`) and every call fails the way libudev reports
//! errors: NULL or a negative errno, with `errno` = ELIBACC, which the `udev`
//! crate turns into an `io::Error` that discovery reports. Only what links
//! the hook library (its two binaries and its tests) defines these symbols,
//! once, from this module; `amd-ctk` does not link it and links libudev as
//! usual. `dlsym` on the library's own handle never finds these definitions
//! (an executable's symbols are not in that scope), so a call cannot loop
//! back here.

#[allow(unsafe_code)]
mod ffi;
