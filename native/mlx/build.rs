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
        .file("cpp/fused_layer.cc")
        .file("cpp/packed_rows.cc")
        .file("cpp/fused_argmax.cc")
        .file("cpp/fused_top_p.cc")
        .file("cpp/vector_math.cc")
        .file("cpp/blas.cc")
        .file("cpp/thread_pool.cc")
        .file("cpp/packed_linear.cc")
        .file("cpp/expert_linear.cc")
        .file("cpp/kv_dequantize.cc")
        .include(&include)
        .include(&out_dir)
        .std("c++20")
        // An op in ops.txt that a switch in shim.cc does not handle is a build error.
        .flag("-Werror=switch")
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-deprecated-declarations")
        .opt_level(3)
        .compile("qwen3_mlx_shim");

    compile_packed_kernels();

    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=mlx");
    // -Xlinker keeps the path whole (-Wl, would split it at commas).
    for arg in ["-Xlinker", "-rpath", "-Xlinker", &lib.display().to_string()] {
        println!("cargo:rustc-link-arg={arg}");
    }
    println!("cargo:libdir={}", lib.display());
    // The whole cpp/ directory: a file listed by hand here was missed when one was added.
    for f in ["ops.txt", "build_ops.rs", "src/ffi.rs", "cpp"] {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rerun-if-env-changed=MLX_DIR");
}

/// packed_kernels.inc once per instruction set, each file alone with its own target flags
/// (the running CPU picks one at run time). `-ffp-contract=fast` lets `a * b + c` on the
/// vector types become FMA instructions.
fn compile_packed_kernels() {
    let x86 = std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64");
    let builds: [(&str, &[&str]); 3] = [
        (
            "avx512",
            &[
                "-mavx512f",
                "-mavx512bw",
                "-mavx512vl",
                "-mavx2",
                "-mfma",
                "-mf16c",
            ],
        ),
        ("avx2", &["-mavx2", "-mfma", "-mf16c"]),
        ("portable", &[]),
    ];
    for (isa, flags) in builds {
        let mut build = cc::Build::new();
        build
            .cpp(true)
            .std("c++20")
            .file(format!("cpp/packed_kernels_{isa}.cc"))
            // `mlx/cpp/…` from the crate's parent, as cxx-build's include paths give it.
            .include("..")
            .flag("-ffp-contract=fast")
            // GCC 12 flags its own AVX-512 headers (_mm512_undefined_epi32).
            .flag_if_supported("-Wno-maybe-uninitialized")
            .opt_level(3);
        if x86 {
            for flag in flags {
                build.flag(flag);
            }
        }
        build.compile(&format!("qwen3_packed_{isa}"));
    }
    // The int8 kernels: AVX-512 VNNI only (elsewhere the file builds its "never runs" half).
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++20")
        .file("cpp/int8_kernels.cc")
        .file("cpp/int8_tiles.cc")
        .include("..")
        // GCC 12's own AVX-512 reductions (_mm512_reduce_add_ps) trip both.
        .flag_if_supported("-Wno-maybe-uninitialized")
        .flag_if_supported("-Wno-uninitialized")
        .opt_level(3);
    if x86 {
        for flag in ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni", "-mf16c"] {
            build.flag(flag);
        }
    }
    build.compile("qwen3_int8");
}
