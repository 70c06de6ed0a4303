//! Test binaries must find libmlx at run time: reuse the prefix the `mlx` crate linked against.
fn main() {
    if let Ok(dir) = std::env::var("DEP_MLX_LIBDIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
