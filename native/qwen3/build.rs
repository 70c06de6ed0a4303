//! Test binaries must find libmlx at run time: reuse the prefix the `mlx` crate linked against.
fn main() {
    if let Ok(dir) = std::env::var("DEP_MLX_LIBDIR") {
        // -Xlinker keeps the path whole (-Wl, would split it at commas).
        for arg in ["-Xlinker", "-rpath", "-Xlinker", &dir] {
            println!("cargo:rustc-link-arg={arg}");
        }
    }
}
