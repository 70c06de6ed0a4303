//! `Qwen3.Blas`'s NIF, loaded before `Qwen3.Native` (whose library links libmlx and, with
//! it, OpenBLAS). It also sets how glibc's malloc keeps MLX's freed buffers (see
//! `keep_freed_buffers`). OpenBLAS picks its kernels from the CPU model as it loads, and 0.3.21
//! (Debian 12) does not know every model: on Xeon VMs that report a generic one it fell
//! back to its Prescott (SSE3) kernels, and float32 products ran 2.5× slower than with its
//! AVX-512 ones. It also keeps its threads spinning for ~0.1 s after each product, and
//! between the attention products of a prefill those spinners took 10–20% of two cores
//! from the products that run on this project's own threads. The VM keeps its own copy of
//! the environment (`System.put_env` does not reach the C library's), so the choices are
//! written here, before OpenBLAS loads.

use rustler::{Env, Term};

/// OPENBLAS_CORETYPE=SkylakeX on a CPU with AVX-512, unless the environment names one.
fn choose_blas_kernels() {
    if std::env::var_os("OPENBLAS_CORETYPE").is_some() || !has_avx512() {
        return;
    }
    // Edition 2021: set_var is safe here; no other thread of this library reads the
    // environment, and OpenBLAS reads it only when it loads, after this.
    std::env::set_var("OPENBLAS_CORETYPE", "SkylakeX");
}

#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx512dq")
}

#[cfg(not(target_arch = "x86_64"))]
fn has_avx512() -> bool {
    false
}

/// OpenBLAS's threads sleep as soon as a product is done (2⁴ cycles of spinning, the least
/// it takes), unless the environment names a timeout.
fn stop_blas_spinning() {
    if std::env::var_os("OPENBLAS_THREAD_TIMEOUT").is_none() {
        std::env::set_var("OPENBLAS_THREAD_TIMEOUT", "4");
    }
}

/// glibc's malloc keeps freed blocks of up to 32 MiB for reuse and returns its heaps' free
/// tops to the OS past 64 MiB, unless the environment tunes malloc itself. Left alone it
/// moves its mmap threshold up to the largest block freed so far: in the VM, after a
/// 128-token prompt a 512-token prefill's buffers (6 MiB each) were mapped and unmapped
/// afresh at every step, page faults and page clearing included, and took 1.4× as long.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_buffers() {
    if std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc.")) {
        return;
    }
    extern "C" {
        fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
    }
    // malloc.h's M_TRIM_THRESHOLD and M_MMAP_THRESHOLD.
    const TRIM_THRESHOLD: std::ffi::c_int = -1;
    const MMAP_THRESHOLD: std::ffi::c_int = -3;
    // SAFETY: mallopt only sets two of malloc's parameters; it takes its own lock.
    unsafe {
        mallopt(MMAP_THRESHOLD, 32 << 20);
        mallopt(TRIM_THRESHOLD, 64 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_buffers() {}

/// The core type OpenBLAS was told in this process's environment (nil: it chose alone).
/// The VM's own copy of the environment does not see what `load` wrote.
#[rustler::nif]
fn openblas_coretype() -> Option<String> {
    std::env::var("OPENBLAS_CORETYPE").ok()
}

/// The spinning timeout OpenBLAS was told (nil: its default).
#[rustler::nif]
fn openblas_thread_timeout() -> Option<String> {
    std::env::var("OPENBLAS_THREAD_TIMEOUT").ok()
}

fn load(_env: Env, _info: Term) -> bool {
    choose_blas_kernels();
    stop_blas_spinning();
    keep_freed_buffers();
    true
}

rustler::init!("Elixir.Qwen3.Blas", load = load);
