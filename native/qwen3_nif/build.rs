//! The cdylib must find libmlx at run time: reuse the prefix the `mlx` crate linked against.
fn main() {
    if let Ok(dir) = std::env::var("DEP_MLX_LIBDIR") {
        // -Xlinker keeps the path whole (-Wl, would split it at commas).
        for arg in ["-Xlinker", "-rpath", "-Xlinker", &dir] {
            println!("cargo:rustc-link-arg={arg}");
        }
    }
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("macos") {
        // NIF symbols (enif_*) are resolved from the running VM.
        println!("cargo:rustc-link-arg=-undefined");
        println!("cargo:rustc-link-arg=dynamic_lookup");
    }
}
