//! The heap of a large cluster zone: jemalloc, and freed pages handed back
//! after a build (control plane).
//!
//! A build of a large cluster allocates and frees hundreds of megabytes of
//! short-lived data (rendered answers of replaced names, parsed objects)
//! on several threads, while the objects it keeps live for hours. The
//! binary's allocator is jemalloc ([`Allocator`], installed by
//! `#[global_allocator]` in `signpost`, with one arena): its size-class
//! slabs keep small objects of one size together, with one arena a freed
//! block is reused by whichever thread allocates that size next, and its
//! per-thread caches keep the parallel first build from waiting on locks.
//!
//! glibc's malloc, used before, did worse on all three counts at 100,000
//! services / 1,000,000 endpoints (`bench/scale/catalog.py`, same run,
//! docs/performance.md "jemalloc"): a thread keeps allocating in its own
//! arena while the blocks the first build freed sit in another, so RSS
//! after 1,000 endpoint changes grew 3.5–18 % from run to run; one arena
//! stopped the growth but made start-up twice as slow (lock contention);
//! and every change cost about 1.7 times the CPU.
//!
//! [`release_free_memory`] asks jemalloc to return the dirty pages of every
//! arena to the kernel at once instead of after its 10 s decay. The
//! compiler calls it once per quiet moment after a build, never on the
//! query path.
//!
//! Operators tune jemalloc through `_RJEM_MALLOC_CONF` (the symbols are
//! prefixed, so the usual `MALLOC_CONF` does not apply), for example
//! `_RJEM_MALLOC_CONF=narenas:2`.
//!
//! This module lifts the workspace's `unsafe_code` ban for two foreign calls
//! to jemalloc's `mallctl`: a purge (null pointers) and a read of one integer.

#![allow(unsafe_code)]

/// The allocator the `signpost` binary installs for the whole process.
pub type Allocator = tikv_jemallocator::Jemalloc;

/// `arena.<i>.purge` with jemalloc's `MALLCTL_ARENAS_ALL` (4096): every arena.
const PURGE_ALL: &std::ffi::CStr = c"arena.4096.purge";

/// Returns the free pages of every jemalloc arena to the kernel. Where
/// jemalloc is not the global allocator (library tests) it purges jemalloc's
/// own empty arenas, which is harmless.
pub fn release_free_memory() {
    let status = purge_all_arenas();
    if status != 0 {
        tracing::debug!(status, "jemalloc did not purge its arenas");
    }
}

/// The number of arenas jemalloc was configured with (`opt.narenas`), or
/// `None` if it cannot be read. The binary's tests check its built-in one.
pub fn configured_arenas() -> Option<u32> {
    let mut arenas: std::ffi::c_uint = 0;
    let mut len = std::mem::size_of::<std::ffi::c_uint>();
    // SAFETY: the name is NUL-terminated; `opt.narenas` is an `unsigned`,
    // read into `arenas`, whose size `len` holds; nothing is written.
    let status = unsafe {
        tikv_jemalloc_sys::mallctl(
            c"opt.narenas".as_ptr(),
            (&raw mut arenas).cast(),
            &raw mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    (status == 0 && len == std::mem::size_of::<std::ffi::c_uint>()).then_some(arenas)
}

/// mallctl's status: 0, or an errno value.
fn purge_all_arenas() -> std::ffi::c_int {
    // SAFETY: the name is NUL-terminated; `arena.<i>.purge` reads and writes
    // nothing, so every pointer is null and the length 0, as mallctl(3)
    // requires for it.
    unsafe {
        tikv_jemalloc_sys::mallctl(
            PURGE_ALL.as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    }
}

#[cfg(test)]
mod tests {
    /// The purge control exists under this name in the linked jemalloc: a
    /// renamed control would make `release_free_memory` a silent no-op.
    #[test]
    fn purging_every_arena_is_accepted() {
        assert_eq!(super::purge_all_arenas(), 0);
    }
}
