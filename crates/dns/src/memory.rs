//! The heap of a large cluster zone: few allocator arenas, freed pages
//! handed back after a build (control plane).
//!
//! A build of a large cluster allocates and frees hundreds of megabytes of
//! short-lived data (rendered answers of replaced names, parsed objects);
//! glibc's allocator keeps freed pages inside its arenas, so the resident
//! set grows with every change even though the live heap does not.
//! [`release_free_memory`] asks glibc to return every whole free page
//! (`malloc_trim(0)`, which since glibc 2.8 also releases free pages in the
//! middle of the heap and of every arena). The compiler calls it once per
//! quiet moment after a build, never on the query path.
//!
//! glibc also gives every thread that allocates while another holds an
//! arena's lock an arena of its own (up to eight per core). The catalog's
//! parse threads, the translator, the compiler and its render threads then
//! spread objects that live for hours over many arenas, among the freed
//! parts of their short-lived work, and a freed page is returned only when
//! nothing else lives on it. [`limit_arenas`] caps them at two (as
//! `MALLOC_ARENA_MAX=2` would, which an operator's own setting overrides):
//! measured with `bench/scale/catalog.py` at 100,000 services / 1,000,000
//! endpoints, RSS at ready 970 → 933 MiB and after 1,000 endpoint changes
//! 1,120 → 1,018 MiB (+15.5 % → +9.2 %). The data plane does not allocate,
//! so queries never wait on an arena lock.
//!
//! This module lifts the workspace's `unsafe_code` ban for two foreign
//! calls that take no pointers.

#![allow(unsafe_code)]

/// Caps glibc's malloc arenas at two unless `MALLOC_ARENA_MAX` is set
/// (glibc only; a no-op elsewhere). Call it before starting threads.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt takes two integers and changes only the
        // allocator's own settings; it is called before any other thread runs.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// Returns free heap pages to the kernel (glibc only; a no-op elsewhere).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes a size and touches only the allocator's own
    // state, under the allocator's locks; it is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}
