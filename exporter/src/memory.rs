//! Keeping the resident set near what a scrape needs: glibc's allocator
//! otherwise keeps a scrape's peak (the table, the label sets, the pieces
//! of the exposition) resident between scrapes, because it raises its
//! mmap threshold after the first large free and caches freed memory in
//! each thread's arena.

/// Large allocations (the table) are mapped on their own and unmapped
/// when freed, and memory freed during a scrape stays in the heap for the
/// scrape's next allocations instead of going back to the kernel at once:
/// otherwise each 64 KiB piece of a streamed exposition would be faulted
/// in and zeroed anew (the kernel's `clear_page` was the largest item of a
/// scrape's profile in the lab). [`release`] gives it all back after the
/// scrape. Called once at start-up.
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; fixed mmap and
    // trim thresholds are a documented use.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 16 * 1024 * 1024);
    }
}

/// Returns the freed memory of every arena to the kernel.
pub fn release() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it touches no live
    // allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}
