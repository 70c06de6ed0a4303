//! Fused kernels and affine quantization. On the CPU in float32, rms_norm, RoPE, attention,
//! SwiGLU and top-p are one graph node each (cpp/fused_*.cc); elsewhere they are
//! `mlx::core::fast`'s kernels (on the CPU, its fallback graphs) or plain MLX ops.

use crate::array::{from_vec, to_vec, with_vec, wrap, Array};
use crate::dtype::Dtype;
use crate::error::Result;
use crate::ffi::bridge;
use crate::ops::unpack;

pub fn rms_norm(x: &Array, weight: &Array, eps: f32) -> Result<Array> {
    wrap(bridge::rms_norm(&x.raw, &weight.raw, eps))
}

/// Rotary embedding on the last axis of `x` (`[.., L, D]`), positions starting at `offset`.
pub fn rope(x: &Array, dims: i32, traditional: bool, base: f32, scale: f32, offset: i32) -> Result<Array> {
    wrap(bridge::rope(&x.raw, dims, traditional, base, scale, offset))
}

/// Like [`rope`] with one start position per batch row (`offsets`: int32 `[B]`).
pub fn rope_offsets(
    x: &Array,
    dims: i32,
    traditional: bool,
    base: f32,
    scale: f32,
    offsets: &Array,
) -> Result<Array> {
    wrap(bridge::rope_offsets(
        &x.raw,
        dims,
        traditional,
        base,
        scale,
        &offsets.raw,
    ))
}

/// Rotary embedding with each pair's wavelength given (`freqs`: float32 `[dims / 2]`, in place
/// of `base^(2i/dims)`; YaRN's), positions starting at `offsets` (int32 scalar, `[1]` or `[B]`).
pub fn rope_freqs(
    x: &Array,
    dims: i32,
    traditional: bool,
    scale: f32,
    offsets: &Array,
    freqs: &Array,
) -> Result<Array> {
    wrap(bridge::rope_freqs(
        &x.raw,
        dims,
        traditional,
        scale,
        &offsets.raw,
        &freqs.raw,
    ))
}

/// q or k from its projection: `x` `[B, T, heads · D]` → `[B, heads, T, D]`, each head
/// [`rms_norm`]'d with `weight` (`[D]`), times `factor` (YaRN's attention factor; 1: none),
/// then rotated as [`rope_offsets`] (`base`) or, with `freqs`, [`rope_freqs`] does (scale 1,
/// positions from `offsets`, int32 `[1]` or `[B]`). On the CPU in float32 one node; elsewhere
/// those ops one by one.
#[allow(clippy::too_many_arguments)]
pub fn norm_rope(
    x: &Array,
    weight: &Array,
    eps: f32,
    heads: i32,
    base: f32,
    offsets: &Array,
    freqs: Option<&Array>,
    factor: f32,
) -> Result<Array> {
    wrap(bridge::norm_rope(
        &x.raw,
        &weight.raw,
        eps,
        heads,
        base,
        &offsets.raw,
        &freqs.unwrap_or(offsets).raw,
        freqs.is_some(),
        factor,
    ))
}

/// The attention mask given to [`sdpa`].
#[derive(Clone, Copy)]
pub enum Mask<'a> {
    None,
    Causal,
    /// Boolean (true = attend) or additive, broadcastable to `[B, H, L, S]`.
    Array(&'a Array),
}

/// softmax(q·kᵀ·scale + mask)·v with grouped-query heads (`q`: `[B, Hq, L, D]`, `k`/`v`: `[B, Hkv, S, D]`).
pub fn sdpa(q: &Array, k: &Array, v: &Array, scale: f32, mask: Mask<'_>) -> Result<Array> {
    match mask {
        Mask::None => wrap(bridge::sdpa(&q.raw, &k.raw, &v.raw, scale, false)),
        Mask::Causal => wrap(bridge::sdpa(&q.raw, &k.raw, &v.raw, scale, true)),
        Mask::Array(m) => wrap(bridge::sdpa_masked(&q.raw, &k.raw, &v.raw, scale, &m.raw)),
    }
}

/// [`sdpa`] with the heads side by side: `[B, L, Hq · D]`, what the output projection takes
/// (on the CPU the fused kernel writes it so; elsewhere, and with a mask array, [`sdpa`]'s
/// output is transposed and reshaped).
pub fn sdpa_merged(q: &Array, k: &Array, v: &Array, scale: f32, mask: Mask<'_>) -> Result<Array> {
    let causal = match mask {
        Mask::None => Some(false),
        Mask::Causal => Some(true),
        Mask::Array(_) => None,
    };
    if let Some(causal) = causal {
        let raw = bridge::sdpa_merged(&q.raw, &k.raw, &v.raw, scale, causal)?;
        if !raw.is_null() {
            return Ok(Array { raw });
        }
    }
    let (b, heads, l, d) = (q.dim(0)?, q.dim(1)?, q.dim(2)?, q.dim(3)?);
    sdpa(q, k, v, scale, mask)?
        .transpose(&[0, 2, 1, 3])?
        .reshape(&[b, l, heads * d])
}

/// `silu(gate) · up`, element-wise.
pub fn swiglu(gate: &Array, up: &Array) -> Result<Array> {
    wrap(bridge::swiglu(&gate.raw, &up.raw))
}

/// `[B, V]` float32 logits with the tokens outside each row's nucleus set to -inf: a token
/// stays while the probability of the tokens more likely than it is below `p`. `None`
/// where the fused CPU kernel does not apply (another device or dtype).
pub fn top_p_filter(logits: &Array, p: f32) -> Result<Option<Array>> {
    let raw = bridge::top_p_filter(&logits.raw, p)?;
    Ok((!raw.is_null()).then_some(Array { raw }))
}

/// The first index of the largest value along the last axis (uint32, the other axes kept),
/// as MLX's argmax picks it, in one CPU node that compares 16 values at a time. `None`
/// where it does not apply (another device, not float32): the caller uses MLX's argmax.
pub fn argmax_last(x: &Array) -> Result<Option<Array>> {
    let raw = bridge::argmax_last(&x.raw)?;
    Ok((!raw.is_null()).then_some(Array { raw }))
}

/// Rows of affine-packed weights (`w`, `scales`, `biases` as [`quantized_matmul`] takes
/// them) picked by integer `ids` of any shape, dequantized to float32 (`ids.shape + [k]`):
/// an embedding lookup as one CPU node, as `take` + [`dequantize`] compute it; an id
/// outside the matrix gives zeros. `None` where it does not apply (another device, bits
/// other than 2/4/8): the caller uses those ops.
pub fn packed_rows(
    ids: &Array,
    (w, scales, biases): (&Array, &Array, &Array),
    group_size: i32,
    bits: i32,
) -> Result<Option<Array>> {
    let raw = bridge::packed_rows(&ids.raw, &w.raw, &scales.raw, &biases.raw, group_size, bits)?;
    Ok((!raw.is_null()).then_some(Array { raw }))
}

/// Whether this thread builds the fused CPU kernels (on by default, off with the
/// environment variable `QWEN3_FUSED_CPU=0`). Returns the previous setting. Off, the same
/// calls build MLX's own graphs: the reference the fused kernels are tested against.
pub fn set_fused_cpu_kernels(on: bool) -> bool {
    bridge::set_fused_cpu_kernels(on)
}

/// What [`decoder_layer`] needs besides arrays.
#[derive(Debug, Clone, Copy)]
pub struct LayerParams {
    /// Every rms_norm's epsilon.
    pub eps: f32,
    /// RoPE's base, unless wavelengths are given.
    pub base: f32,
    /// YaRN's factor on the normed q and k (1: none).
    pub factor: f32,
    /// Attention's scale.
    pub scale: f32,
    pub heads: i32,
    pub kv_heads: i32,
    /// The cache slot the first new token's key and value go to.
    pub slot: i32,
    pub bits: i32,
    pub group_size: i32,
    /// Products through the int8 kernels, where [`quantized_linears`] would run them.
    pub int8: bool,
}

/// A dense Qwen3 decoder layer as one CPU graph node (float32, up to 8 tokens a row,
/// affine-packed weights): `x` `[B, L, hidden]` → `[y, keys', values']`, the layer's output
/// and the cache buffers `keys` and `values` (`[B, kv_heads, slots, D]`), into which the node
/// writes the new keys and values in place at `p.slot`, as arrays evaluated after it (float32
/// buffers, or float16 ones that the node reads widened).
/// `norms`: input, q, k, post-attention; `positions`: int32 `[1]` or `[B]`; `freqs`: RoPE's
/// wavelengths, if any; `matrices`: weight, scales and biases of q, k, v, o, gate, up, down.
/// The same kernels as the op-by-op layer in the same order, so the same result to the bit;
/// `None` where it does not apply (the caller builds the layer op by op). The node holds the
/// norms and matrices (loaded arrays): only `x`, the positions and the buffers are inputs.
pub fn decoder_layer(
    x: &Array,
    norms: [&Array; 4],
    positions: &Array,
    freqs: Option<&Array>,
    (keys, values): (&Array, &Array),
    matrices: &[[&Array; 3]; 7],
    p: LayerParams,
) -> Result<Option<[Array; 3]>> {
    let vectors: Vec<&Array> = norms.into_iter().chain([positions]).chain(freqs).collect();
    let matrices: Vec<&Array> = matrices.iter().flatten().copied().collect();
    let (floats, ints) = p.numbers(freqs.is_some());
    let out = bridge::fused_decoder_layer(
        &x.raw,
        &to_vec(&vectors),
        &keys.raw,
        &values.raw,
        &to_vec(&matrices),
        &floats,
        &ints,
    )?;
    if out.is_null() {
        return Ok(None);
    }
    match <[Array; 3]>::try_from(from_vec(&out)?) {
        Ok(all) => Ok(Some(all)),
        Err(_) => Err(crate::Error::Mlx("decoder_layer: expected three outputs".into())),
    }
}

/// One layer of a [`decoder_stack`]: its four norms (input, q, k, post-attention), its cache's
/// buffers and its matrices, as [`decoder_layer`] takes them.
pub struct StackLayer<'a> {
    pub norms: [&'a Array; 4],
    pub caches: (&'a Array, &'a Array),
    pub matrices: [[&'a Array; 3]; 7],
}

/// Consecutive decoder layers as one CPU node, each as [`decoder_layer`] runs it, all of
/// their caches at `p.slot` (a decode step): `x` → the last layer's output and each layer's
/// `[keys', values']`. No hand-offs between layers on the CPU stream, two graph nodes fewer
/// to build per layer. `None` where any layer's node would not apply.
pub fn decoder_stack(
    x: &Array,
    positions: &Array,
    freqs: Option<&Array>,
    layers: &[StackLayer],
    p: LayerParams,
) -> Result<Option<(Array, Vec<[Array; 2]>)>> {
    let mut vectors: Vec<&Array> = layers.iter().flat_map(|l| l.norms).collect();
    vectors.extend(std::iter::once(positions).chain(freqs));
    let caches: Vec<&Array> = layers.iter().flat_map(|l| [l.caches.0, l.caches.1]).collect();
    let matrices: Vec<&Array> = layers
        .iter()
        .flat_map(|l| l.matrices.iter().flatten().copied())
        .collect();
    let (floats, ints) = p.numbers(freqs.is_some());
    let out = bridge::fused_decoder_stack(
        &x.raw,
        &to_vec(&vectors),
        &to_vec(&caches),
        &to_vec(&matrices),
        &floats,
        &ints,
    )?;
    if out.is_null() {
        return Ok(None);
    }
    let mut out = from_vec(&out)?.into_iter();
    let (Some(y), true) = (out.next(), out.len() == 2 * layers.len()) else {
        return Err(crate::Error::Mlx(
            "decoder_stack: expected 1 + 2 outputs a layer".into(),
        ));
    };
    let mut buffers = Vec::with_capacity(layers.len());
    while let (Some(keys), Some(values)) = (out.next(), out.next()) {
        buffers.push([keys, values]);
    }
    Ok(Some((y, buffers)))
}

impl LayerParams {
    /// The floats and ints the bridge takes.
    fn numbers(&self, has_freqs: bool) -> ([f32; 4], [i32; 7]) {
        let ints = [
            self.heads,
            self.kv_heads,
            self.slot,
            self.bits,
            self.group_size,
            self.int8 as i32,
            has_freqs as i32,
        ];
        ([self.eps, self.base, self.factor, self.scale], ints)
    }
}

/// Whether this thread builds [`decoder_layer`]'s node (on by default). Returns the previous
/// setting; off, the layer is built op by op (the reference the node is tested against).
pub fn set_fused_layer(on: bool) -> bool {
    bridge::set_fused_layer(on)
}

/// `x · dequantize(w)ᵀ` (or without the transpose) without materialising the weights.
pub fn quantized_matmul(
    x: &Array,
    w: &Array,
    scales: &Array,
    biases: &Array,
    transpose: bool,
    group_size: i32,
    bits: i32,
) -> Result<Array> {
    wrap(bridge::quantized_matmul(
        &x.raw,
        &w.raw,
        &scales.raw,
        &biases.raw,
        transpose,
        group_size,
        bits,
    ))
}

pub fn dequantize(
    w: &Array,
    scales: &Array,
    biases: &Array,
    group_size: i32,
    bits: i32,
    dtype: Dtype,
) -> Result<Array> {
    wrap(bridge::dequantize(
        &w.raw,
        &scales.raw,
        &biases.raw,
        group_size,
        bits,
        dtype as u8,
    ))
}

/// `x · dequantize(w)ᵀ` with `w` kept packed. Float32 `x` on the CPU runs this project's
/// kernels (2/4/8 bits; each packed weight read once, decoded in registers, float32 sums;
/// tiles dequantized for BLAS when `x` has more than 8 rows); elsewhere MLX's
/// `quantized_matmul`, with the scales in `x`'s dtype.
pub fn quantized_linear(
    x: &Array,
    w: &Array,
    scales: &Array,
    biases: &Array,
    group_size: i32,
    bits: i32,
) -> Result<Array> {
    packed_product(x, [w, scales, biases], group_size, bits, false)
}

/// [`quantized_linear`] with `x` quantized to int8 per weight group for integer dot
/// products (AVX-512 VNNI) where [`int8_activations_supported`]; elsewhere, and for a
/// single row of 8-bit weights (where the float kernels are faster), exactly
/// [`quantized_linear`]. Each output moves by at most Σ_c |scale · q[j, c]| · s/2, s the
/// int8 step of x in c's group (max |x| / 127).
pub fn quantized_linear_int8(
    x: &Array,
    w: &Array,
    scales: &Array,
    biases: &Array,
    group_size: i32,
    bits: i32,
) -> Result<Array> {
    packed_product(x, [w, scales, biases], group_size, bits, true)
}

/// `x · dequantize(wᵢ)ᵀ` for matrices `[wᵢ, scalesᵢ, biasesᵢ]` of one layout that share
/// `x` (q/k/v, gate/up): the same products as [`quantized_linear`] (or, `int8`,
/// [`quantized_linear_int8`]), one output each. On the CPU's kernels they are one graph
/// node: `x` is prepared once and all their rows are split across the cores together.
pub fn quantized_linears(
    x: &Array,
    parts: &[[&Array; 3]],
    group_size: i32,
    bits: i32,
    int8: bool,
) -> Result<Vec<Array>> {
    let flat: Vec<&Array> = parts.iter().flatten().copied().collect();
    let out = with_vec(&flat, |v| {
        bridge::quantized_linears(&x.raw, v, group_size, bits, int8)
    })?;
    from_vec(&out)
}

fn packed_product(
    x: &Array,
    [w, scales, biases]: [&Array; 3],
    group: i32,
    bits: i32,
    int8: bool,
) -> Result<Array> {
    wrap(bridge::quantized_linear(
        &x.raw,
        &w.raw,
        &scales.raw,
        &biases.raw,
        group,
        bits,
        int8,
    ))
}

/// `x` `[..., X, k]` (X = 1, or one row per picked expert) times the experts that `indices`
/// `[..., top_k]` picks from the stack `w` `[E, n, k]` → `[..., top_k, n]`; only the picked
/// experts are read. Float32 `x` on the CPU with bf16/f16 `w` runs this project's kernels
/// (each picked expert read once for all rows that picked it); elsewhere MLX's `gather_mm`.
pub fn expert_linear(x: &Array, w: &Array, indices: &Array) -> Result<Array> {
    wrap(bridge::expert_linear(&x.raw, &w.raw, &indices.raw))
}

/// [`expert_linear`] with the stack affine-quantized (`w` `[E, n, k·bits/32]`, scales and
/// biases `[E, n, k / group_size]`): the packed kernels on the CPU, else MLX's `gather_qmm`.
pub fn expert_quantized_linear(
    x: &Array,
    w: &Array,
    scales: &Array,
    biases: &Array,
    indices: &Array,
    group_size: i32,
    bits: i32,
) -> Result<Array> {
    wrap(bridge::expert_quantized_linear(
        &x.raw,
        &w.raw,
        &scales.raw,
        &biases.raw,
        &indices.raw,
        group_size,
        bits,
    ))
}

/// Whether the CPU kernels of [`quantized_linear`] take `bits` in groups of `group_size`
/// (2, 4 or 8 bits; 3, 5 and 6 are not packed on the CPU).
pub fn packed_supported(bits: i32, group_size: i32) -> bool {
    bridge::packed_supported(bits, group_size)
}

/// Whether this CPU runs [`quantized_linear_int8`]'s integer kernels for `bits` (4 or 8) in
/// groups of `group_size` (32, 64, 128) with `k` input features.
pub fn int8_activations_supported(bits: i32, group_size: i32, k: i64) -> bool {
    bridge::int8_activations_supported(bits, group_size, k)
}

/// Makes this thread's graphs use one build of the packed kernels: `"avx512"`, `"avx2"`,
/// `"portable"`, or `""` for the best this CPU runs. False if this CPU cannot run it.
pub fn use_packed_isa(name: &str) -> bool {
    bridge::use_packed_isa(name)
}

/// The build of the packed kernels this thread's graphs use.
pub fn packed_isa() -> String {
    bridge::packed_isa_in_use()
}

/// A quantized KV cache's slots (`[B, H, T, D·bits/32]` packed, scales and biases
/// `[B, H, T, D/group_size]`) as `[B, H, T, D]` in the scales' dtype: on the CPU in float32
/// one node of this project's (row by row, across the cores), elsewhere MLX's `dequantize`.
pub fn dequantize_kv(w: &Array, scales: &Array, biases: &Array, group_size: i32, bits: i32) -> Result<Array> {
    wrap(bridge::dequantize_kv(
        &w.raw,
        &scales.raw,
        &biases.raw,
        group_size,
        bits,
    ))
}

/// Returns `[weight, scales, biases]` as mlx-lm stores them.
pub fn quantize(w: &Array, group_size: i32, bits: i32) -> Result<Vec<Array>> {
    unpack(bridge::quantize(&w.raw, group_size, bits))
}
