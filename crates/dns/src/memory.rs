//! Handing freed heap back to the kernel after a build (control plane).
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
//! This module lifts the workspace's `unsafe_code` ban for one foreign call
//! that takes no pointers.

#![allow(unsafe_code)]

/// Returns free heap pages to the kernel (glibc only; a no-op elsewhere).
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes a size and touches only the allocator's own
    // state, under the allocator's locks; it is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}
