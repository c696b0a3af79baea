//! Keeping the resident set near what a scrape needs: glibc's allocator
//! otherwise keeps a scrape's peak (the 17 MB exposition of a 1,000 x 10
//! table, the label sets) resident between scrapes, because it raises its
//! mmap threshold after the first large free and caches freed memory in
//! each thread's arena.

/// Large allocations (the exposition, the table) are mapped on their own
/// and unmapped when freed; called once at start-up.
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; a fixed mmap
    // threshold (which also fixes the trim threshold) is a documented use.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
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
