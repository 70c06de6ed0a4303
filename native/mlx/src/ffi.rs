//! The cxx bridge. Every fallible C++ call returns `Result`: cxx catches the C++
//! exception in the generated shim, so no exception ever unwinds into Rust.

#[cxx::bridge(namespace = "qwen3_mlx")]
pub(crate) mod bridge {
    unsafe extern "C++" {
        include!("mlx/cpp/shim.h");

        type Array;
        type ArrayVec;

        fn bind_thread_to_device(gpu: bool) -> Result<()>;
        fn device_available(gpu: bool) -> bool;

        fn from_bytes(data: &[u8], shape: &[i32], dtype: u8) -> Result<UniquePtr<Array>>;
        fn to_bytes(a: &Array, out: &mut [u8]) -> Result<()>;
        fn shape(a: &Array) -> Vec<i32>;
        fn dtype(a: &Array) -> u8;
        fn nbytes(a: &Array) -> usize;
        fn clone_array(a: &Array) -> UniquePtr<Array>;
        fn primitive_name(a: &Array) -> String;
        fn full(shape: &[i32], value: f64, dtype: u8) -> Result<UniquePtr<Array>>;
        fn arange(start: f64, stop: f64, step: f64, dtype: u8) -> Result<UniquePtr<Array>>;

        fn vec_new() -> UniquePtr<ArrayVec>;
        fn vec_push(v: Pin<&mut ArrayVec>, a: &Array);
        fn vec_len(v: &ArrayVec) -> usize;
        fn vec_get(v: &ArrayVec, i: usize) -> Result<UniquePtr<Array>>;

        fn eval(v: &ArrayVec) -> Result<()>;
        fn async_eval(v: &ArrayVec) -> Result<()>;
        fn synchronize() -> Result<()>;
        fn active_memory() -> usize;
        fn peak_memory() -> usize;
        fn cache_memory() -> usize;
        fn reset_peak_memory();
        fn set_cache_limit(limit: usize) -> usize;
        fn set_memory_limit(limit: usize) -> usize;
        fn clear_cache();

        fn unary(op: u8, a: &Array) -> Result<UniquePtr<Array>>;
        fn binary(op: u8, a: &Array, b: &Array) -> Result<UniquePtr<Array>>;
        fn where_(cond: &Array, a: &Array, b: &Array) -> Result<UniquePtr<Array>>;

        fn reshape(a: &Array, shape: &[i32]) -> Result<UniquePtr<Array>>;
        fn transpose(a: &Array, axes: &[i32]) -> Result<UniquePtr<Array>>;
        fn astype(a: &Array, dtype: u8) -> Result<UniquePtr<Array>>;
        fn take(a: &Array, indices: &Array, axis: i32) -> Result<UniquePtr<Array>>;
        fn take_along_axis(a: &Array, indices: &Array, axis: i32) -> Result<UniquePtr<Array>>;
        fn put_along_axis(a: &Array, indices: &Array, values: &Array, axis: i32) -> Result<UniquePtr<Array>>;
        fn slice(a: &Array, start: &[i32], stop: &[i32]) -> Result<UniquePtr<Array>>;
        fn slice_update(src: &Array, update: &Array, start: &[i32], stop: &[i32])
            -> Result<UniquePtr<Array>>;
        fn concatenate(v: &ArrayVec, axis: i32) -> Result<UniquePtr<Array>>;
        fn expand_dims(a: &Array, axis: i32) -> Result<UniquePtr<Array>>;
        fn broadcast_to(a: &Array, shape: &[i32]) -> Result<UniquePtr<Array>>;
        fn contiguous(a: &Array) -> Result<UniquePtr<Array>>;

        fn reduce(op: u8, a: &Array, axis: i32, keepdims: bool) -> Result<UniquePtr<Array>>;
        fn sort(a: &Array, axis: i32) -> Result<UniquePtr<Array>>;
        fn argsort(a: &Array, axis: i32) -> Result<UniquePtr<Array>>;
        fn argpartition(a: &Array, kth: i32, axis: i32) -> Result<UniquePtr<Array>>;
        fn cumsum(a: &Array, axis: i32, reverse: bool, inclusive: bool) -> Result<UniquePtr<Array>>;
        fn matmul(a: &Array, b: &Array) -> Result<UniquePtr<Array>>;
        fn linear(x: &Array, w: &Array) -> Result<UniquePtr<Array>>;
        fn has_blas_gemv() -> bool;
        fn few_rows_supported() -> bool;

        fn rms_norm(x: &Array, weight: &Array, eps: f32) -> Result<UniquePtr<Array>>;
        fn rope(
            x: &Array,
            dims: i32,
            traditional: bool,
            base: f32,
            scale: f32,
            offset: i32,
        ) -> Result<UniquePtr<Array>>;
        fn rope_offsets(
            x: &Array,
            dims: i32,
            traditional: bool,
            base: f32,
            scale: f32,
            offsets: &Array,
        ) -> Result<UniquePtr<Array>>;
        fn rope_freqs(
            x: &Array,
            dims: i32,
            traditional: bool,
            scale: f32,
            offsets: &Array,
            freqs: &Array,
        ) -> Result<UniquePtr<Array>>;
        #[allow(clippy::too_many_arguments)]
        fn norm_rope(
            x: &Array,
            weight: &Array,
            eps: f32,
            heads: i32,
            base: f32,
            offsets: &Array,
            freqs: &Array,
            has_freqs: bool,
            factor: f32,
        ) -> Result<UniquePtr<Array>>;
        fn sdpa(q: &Array, k: &Array, v: &Array, scale: f32, causal: bool) -> Result<UniquePtr<Array>>;
        fn sdpa_merged(q: &Array, k: &Array, v: &Array, scale: f32, causal: bool)
            -> Result<UniquePtr<Array>>;
        fn sdpa_masked(q: &Array, k: &Array, v: &Array, scale: f32, mask: &Array)
            -> Result<UniquePtr<Array>>;
        fn swiglu(gate: &Array, up: &Array) -> Result<UniquePtr<Array>>;
        fn top_p_filter(logits: &Array, p: f32) -> Result<UniquePtr<Array>>;
        fn set_fused_cpu_kernels(on: bool) -> bool;
        fn argmax_last(x: &Array) -> Result<UniquePtr<Array>>;
        fn packed_rows(
            ids: &Array,
            w: &Array,
            scales: &Array,
            biases: &Array,
            group: i32,
            bits: i32,
        ) -> Result<UniquePtr<Array>>;
        fn fused_decoder_layer(
            x: &Array,
            vectors: &ArrayVec,
            keys: &Array,
            values: &Array,
            matrices: &ArrayVec,
            floats: &[f32],
            ints: &[i32],
        ) -> Result<UniquePtr<ArrayVec>>;
        fn fused_decoder_stack(
            x: &Array,
            vectors: &ArrayVec,
            caches: &ArrayVec,
            matrices: &ArrayVec,
            floats: &[f32],
            ints: &[i32],
        ) -> Result<UniquePtr<ArrayVec>>;
        fn set_fused_layer(on: bool) -> bool;

        fn quantized_matmul(
            x: &Array,
            w: &Array,
            scales: &Array,
            biases: &Array,
            transpose: bool,
            group_size: i32,
            bits: i32,
        ) -> Result<UniquePtr<Array>>;
        fn dequantize(
            w: &Array,
            scales: &Array,
            biases: &Array,
            group_size: i32,
            bits: i32,
            dtype: u8,
        ) -> Result<UniquePtr<Array>>;
        fn quantize(w: &Array, group_size: i32, bits: i32) -> Result<UniquePtr<ArrayVec>>;
        fn dequantize_kv(
            w: &Array,
            scales: &Array,
            biases: &Array,
            group_size: i32,
            bits: i32,
        ) -> Result<UniquePtr<Array>>;
        fn quantized_linear(
            x: &Array,
            w: &Array,
            scales: &Array,
            biases: &Array,
            group_size: i32,
            bits: i32,
            int8: bool,
        ) -> Result<UniquePtr<Array>>;
        fn quantized_linears(
            x: &Array,
            parts: &ArrayVec,
            group_size: i32,
            bits: i32,
            int8: bool,
        ) -> Result<UniquePtr<ArrayVec>>;
        fn expert_linear(x: &Array, w: &Array, indices: &Array) -> Result<UniquePtr<Array>>;
        fn expert_quantized_linear(
            x: &Array,
            w: &Array,
            scales: &Array,
            biases: &Array,
            indices: &Array,
            group_size: i32,
            bits: i32,
        ) -> Result<UniquePtr<Array>>;
        fn packed_supported(bits: i32, group_size: i32) -> bool;
        fn int8_activations_supported(bits: i32, group_size: i32, k: i64) -> bool;
        fn use_packed_isa(name: &str) -> bool;
        fn packed_isa_in_use() -> String;

        fn random_key(seed: u64) -> Result<UniquePtr<Array>>;
        fn random_split(key: &Array) -> Result<UniquePtr<ArrayVec>>;
        fn random_categorical(logits: &Array, axis: i32, key: &Array) -> Result<UniquePtr<Array>>;
        fn random_uniform(shape: &[i32], dtype: u8, key: &Array) -> Result<UniquePtr<Array>>;
    }
}
