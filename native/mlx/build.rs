//! Compiles the C++ shim against a prebuilt MLX (see scripts/setup_mlx.sh) and links it.
use std::path::PathBuf;

fn mlx_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MLX_DIR") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("QWEN3_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("qwen3")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/qwen3")))
        .expect("set MLX_DIR to an MLX prefix (include/ and lib/)");
    let wheel = if cfg!(target_os = "macos") {
        "mlx-metal"
    } else {
        "mlx-cpu"
    };
    cache.join(format!("{wheel}-0.32.4/mlx"))
}

fn main() {
    let dir = mlx_dir();
    let include = dir.join("include");
    let lib = dir.join("lib");
    if !include.join("mlx/mlx.h").exists() {
        panic!(
            "MLX headers not found under {} — run `make setup` or set MLX_DIR",
            include.display()
        );
    }
    cxx_build::bridge("src/ffi.rs")
        .file("cpp/shim.cc")
        .file("cpp/linear.cc")
        .file("cpp/few_rows.cc")
        .file("cpp/fused_cpu.cc")
        .file("cpp/fused_rope.cc")
        .file("cpp/fused_attention.cc")
        .file("cpp/fused_top_p.cc")
        .file("cpp/vector_math.cc")
        .file("cpp/blas.cc")
        .include(&include)
        .std("c++20")
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-deprecated-declarations")
        .opt_level(3)
        .compile("qwen3_mlx_shim");

    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=mlx");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    println!("cargo:libdir={}", lib.display());
    for f in [
        "src/ffi.rs",
        "cpp/shim.cc",
        "cpp/shim.h",
        "cpp/linear.cc",
        "cpp/few_rows.cc",
        "cpp/few_rows.h",
        "cpp/fused_cpu.h",
        "cpp/cpu_kernel.h",
        "cpp/fused_cpu.cc",
        "cpp/fused_rope.cc",
        "cpp/fused_attention.cc",
        "cpp/fused_top_p.cc",
        "cpp/vector_math.cc",
        "cpp/vector_math.h",
        "cpp/blas.cc",
        "cpp/blas.h",
    ] {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rerun-if-env-changed=MLX_DIR");
}
