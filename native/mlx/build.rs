//! Compiles the C++ shim against a prebuilt MLX (`MLX_DIR`; see `mix qwen3.mlx`) and links it,
//! after generating the op enums both sides share from ops.txt.
use std::path::PathBuf;

#[path = "build_ops.rs"]
mod build_ops;

/// The MLX prefix: `mix compile` passes it; by hand, `export MLX_DIR="$(mix qwen3.mlx)"`
/// (which fetches the official wheel first if needed).
fn mlx_dir() -> PathBuf {
    match std::env::var_os("MLX_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => panic!(
            "MLX_DIR is not set: build through `mix compile`, or run \
             `export MLX_DIR=\"$(mix qwen3.mlx)\"` first (it fetches MLX if needed)"
        ),
    }
}

fn main() {
    let dir = mlx_dir();
    let include = dir.join("include");
    let lib = dir.join("lib");
    if !include.join("mlx/mlx.h").exists() {
        panic!(
            "MLX headers not found under {}: MLX_DIR must be an MLX install prefix",
            include.display()
        );
    }
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    build_ops::generate(std::path::Path::new("ops.txt"), &out_dir);
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
        .include(&out_dir)
        .std("c++20")
        // An op in ops.txt that a switch in shim.cc does not handle is a build error.
        .flag("-Werror=switch")
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-deprecated-declarations")
        .opt_level(3)
        .compile("qwen3_mlx_shim");

    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=mlx");
    // -Xlinker keeps the path whole (-Wl, would split it at commas).
    for arg in ["-Xlinker", "-rpath", "-Xlinker", &lib.display().to_string()] {
        println!("cargo:rustc-link-arg={arg}");
    }
    println!("cargo:libdir={}", lib.display());
    for f in [
        "ops.txt",
        "build_ops.rs",
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
