//! MLX allocator statistics and limits (bytes).

use crate::ffi::bridge;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryStats {
    /// Bytes held by live arrays.
    pub active: usize,
    /// High-water mark of `active` since the last reset.
    pub peak: usize,
    /// Bytes freed by arrays but kept by MLX's buffer cache for reuse.
    pub cache: usize,
}

pub fn stats() -> MemoryStats {
    MemoryStats {
        active: bridge::active_memory(),
        peak: bridge::peak_memory(),
        cache: bridge::cache_memory(),
    }
}

pub fn reset_peak() {
    bridge::reset_peak_memory()
}

/// Caps the buffer cache; returns the previous limit.
pub fn set_cache_limit(bytes: usize) -> usize {
    bridge::set_cache_limit(bytes)
}

/// Caps total memory MLX may allocate; returns the previous limit.
pub fn set_memory_limit(bytes: usize) -> usize {
    bridge::set_memory_limit(bytes)
}

pub fn clear_cache() {
    bridge::clear_cache()
}
