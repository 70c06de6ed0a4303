//! A KV cache: per layer, keys and values of shape `[B, N_kv, T_max, D]` (allocated
//! `KV_STEP` slots at a time as they fill, see kv_buffer.rs), written at the layer's
//! offset. Reads only ever see slots `..offset`, never stale ones.
//!
//! Rows of a batch may hold prompts of different lengths: they are left-padded, and
//! `left_padding[b]` slots at the start of row `b` are masked out and skipped by RoPE.
//!
//! A windowed cache (`set_window`, as mlx-lm's RotatingKVCache) never fills up: when a
//! write would not fit, it keeps its first `keep` tokens and drops the oldest after them
//! (a quarter of the window at once, so that the shift is rare). Keys are stored rotated,
//! so the tokens kept keep their positions; new ones take theirs from the tokens fed.
//!
//! Keys and values may be stored quantized (`KvQuant`, as mlx-lm's QuantizedKVCache).

use crate::error::{bail, Result};
use crate::kv_buffer::{KvBuffer, KvQuant};
use mlx::{Array, Dtype};

pub struct LayerKv {
    keys: KvBuffer,
    values: KvBuffer,
    /// Slots filled.
    offset: i32,
    /// Tokens a window dropped: the next token's position is `offset + dropped`.
    dropped: i32,
}

pub struct KvCache {
    layers: Vec<LayerKv>,
    batch: i32,
    capacity: i32,
    left_padding: Option<Vec<i32>>,
    /// `Some(keep)` for a windowed cache.
    window: Option<i32>,
    /// The model the cache was made for (`Model::identity`), checked when a saved cache loads.
    model: String,
}

impl KvCache {
    pub fn new(
        num_layers: usize,
        batch: i32,
        kv_heads: i32,
        capacity: i32,
        head_dim: i32,
        dtype: Dtype,
        quant: Option<KvQuant>,
    ) -> Result<KvCache> {
        if batch < 1 || capacity < 1 {
            bail!(InvalidArgument, "a KV cache needs batch ≥ 1 and capacity ≥ 1");
        }
        let shape = [batch, kv_heads, capacity, head_dim];
        let layers = (0..num_layers)
            .map(|_| {
                Ok(LayerKv {
                    keys: KvBuffer::new(shape, dtype, quant)?,
                    values: KvBuffer::new(shape, dtype, quant)?,
                    offset: 0,
                    dropped: 0,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(KvCache {
            layers,
            batch,
            capacity,
            left_padding: None,
            window: None,
            model: String::new(),
        })
    }

    pub fn model_identity(&self) -> &str {
        &self.model
    }

    pub(crate) fn set_model_identity(&mut self, identity: String) {
        self.model = identity;
    }

    pub fn batch(&self) -> i32 {
        self.batch
    }

    pub fn capacity(&self) -> i32 {
        self.capacity
    }

    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Tokens fed so far (by the first layer; all layers agree after a full step): the
    /// position of the next one. A windowed cache holds fewer once it dropped some.
    pub fn offset(&self) -> i32 {
        self.layers.first().map_or(0, |l| l.offset + l.dropped)
    }

    /// The position of layer `layer`'s next token.
    pub fn layer_offset(&self, layer: usize) -> i32 {
        self.layers[layer].offset + self.layers[layer].dropped
    }

    /// Tokens a window dropped so far.
    pub fn dropped(&self) -> i32 {
        self.layers.first().map_or(0, |l| l.dropped)
    }

    /// Makes an empty one-row cache a window that keeps its first `keep` tokens.
    pub fn set_window(&mut self, keep: i32) -> Result<()> {
        if self.offset() != 0 || self.batch != 1 || self.left_padding.is_some() {
            bail!(InvalidArgument, "only an empty one-row cache can become a window");
        }
        if keep < 0 || keep >= self.capacity {
            bail!(
                InvalidArgument,
                "a window of {} keeping {keep} tokens has no room left",
                self.capacity
            );
        }
        self.window = Some(keep);
        Ok(())
    }

    pub fn left_padding(&self) -> Option<&[i32]> {
        self.left_padding.as_deref()
    }

    /// Declares per-row left padding; only allowed on an empty cache.
    pub fn set_left_padding(&mut self, padding: Vec<i32>) -> Result<()> {
        if self.offset() != 0 {
            bail!(InvalidArgument, "left padding can only be set on an empty cache");
        }
        if padding.len() != self.batch as usize || padding.iter().any(|&p| p < 0) {
            bail!(
                InvalidArgument,
                "left padding needs one non-negative count per row"
            );
        }
        self.left_padding = padding.iter().any(|&p| p > 0).then_some(padding);
        Ok(())
    }

    /// Forgets everything after `len` tokens (e.g. to re-run a turn); slots are overwritten later.
    pub fn truncate(&mut self, len: i32) -> Result<()> {
        if self.dropped() > 0 && len != self.offset() {
            bail!(
                InvalidArgument,
                "a window that dropped tokens cannot be cut back (to {len} of {})",
                self.offset()
            );
        }
        if self.dropped() > 0 {
            return Ok(());
        }
        if len < 0 || len > self.offset() {
            bail!(
                InvalidArgument,
                "cannot truncate a cache of {} tokens to {len}",
                self.offset()
            );
        }
        for l in &mut self.layers {
            l.offset = len;
        }
        if len == 0 {
            self.left_padding = None;
        }
        Ok(())
    }

    /// Rejects a write of `len` tokens that would not fit, before any graph is built.
    pub fn check_room(&self, layer: usize, len: i32) -> Result<()> {
        let Some(l) = self.layers.get(layer) else {
            bail!(
                InvalidArgument,
                "layer {layer} out of range (cache has {})",
                self.layers.len()
            )
        };
        if let Some(keep) = self.window {
            if len > self.capacity - keep {
                bail!(
                    CacheOverflow,
                    "{len} new tokens at once exceed the window of {} (keeping {keep})",
                    self.capacity
                );
            }
            return Ok(());
        }
        if l.offset + len > self.capacity {
            bail!(
                CacheOverflow,
                "{} cached + {len} new tokens exceed the cache capacity of {}",
                l.offset,
                self.capacity
            );
        }
        Ok(())
    }

    /// Writes `keys`/`values` (`[B, N_kv, L, D]`) at the layer's offset and returns the
    /// keys and values of slots `..offset + L`.
    pub fn update(&mut self, layer: usize, keys: &Array, values: &Array) -> Result<(Array, Array)> {
        let len = keys.dim(2)?;
        self.room_for(layer, len)?;
        let l = &mut self.layers[layer];
        l.keys.write(keys, l.offset)?;
        l.values.write(values, l.offset)?;
        l.offset += len;
        Ok((l.keys.read(l.offset)?, l.values.read(l.offset)?))
    }

    /// [`KvCache::update`] for a node that writes the keys and values itself
    /// (mlx::fast::decoder_layer): makes room for `len` tokens in layer `layer` and hands
    /// `write` the float or float16 buffers and the slot of the first new token. `write`
    /// returns the buffers as written and its node's output, or `None` (nothing written: the
    /// cache stays as it was, room made). A quantized cache is never handed over (`Ok(None)`).
    pub fn update_in_node(
        &mut self,
        layer: usize,
        len: i32,
        write: impl FnOnce(&Array, &Array, i32) -> Result<Option<[Array; 3]>>,
    ) -> Result<Option<Array>> {
        self.room_for(layer, len)?;
        let l = &mut self.layers[layer];
        let (Some(keys), Some(values)) = (l.keys.whole(), l.values.whole()) else {
            return Ok(None);
        };
        let Some([output, keys, values]) = write(keys, values, l.offset)? else {
            return Ok(None);
        };
        (l.keys, l.values) = (l.keys.with_whole(keys), l.values.with_whole(values));
        l.offset += len;
        Ok(Some(output))
    }

    /// [`KvCache::update_in_node`] for every layer at once (mlx::fast::decoder_stack): `write`
    /// gets each layer's buffers and the slot, which must be the same for all layers (else
    /// `Ok(None)`, nothing written), and returns its node's output and each layer's buffers.
    pub fn update_all_in_node<T>(
        &mut self,
        len: i32,
        write: impl FnOnce(&[(&Array, &Array)], i32) -> Result<Option<(T, Vec<[Array; 2]>)>>,
    ) -> Result<Option<T>> {
        for layer in 0..self.layers.len() {
            self.room_for(layer, len)?;
        }
        let Some(first) = self.layers.first() else {
            return Ok(None);
        };
        let (slot, dropped) = (first.offset, first.dropped);
        let mut buffers = Vec::with_capacity(self.layers.len());
        for l in &self.layers {
            match (l.keys.whole(), l.values.whole()) {
                (Some(keys), Some(values)) if l.offset == slot && l.dropped == dropped => {
                    buffers.push((keys, values))
                }
                _ => return Ok(None),
            }
        }
        // A node built but never evaluated has written nothing: the cache stays as it was.
        let Some((output, written)) = write(&buffers, slot)?.filter(|(_, w)| w.len() == self.layers.len())
        else {
            return Ok(None);
        };
        for (l, [keys, values]) in self.layers.iter_mut().zip(written) {
            (l.keys, l.values) = (l.keys.with_whole(keys), l.values.with_whole(values));
            l.offset += len;
        }
        Ok(Some(output))
    }

    /// Checks that `len` more tokens fit layer `layer`, then makes the room: a window drops its
    /// oldest tokens, the buffers grow.
    fn room_for(&mut self, layer: usize, len: i32) -> Result<()> {
        self.check_room(layer, len)?;
        if let Some(keep) = self.window {
            self.make_room(layer, keep, len)?;
        }
        let (l, capacity) = (&mut self.layers[layer], self.capacity);
        l.keys.reserve(l.offset + len, capacity)?;
        l.values.reserve(l.offset + len, capacity)
    }

    /// Drops the oldest tokens after the first `keep` of layer `layer` until `len` more fit.
    fn make_room(&mut self, layer: usize, keep: i32, len: i32) -> Result<()> {
        let l = &mut self.layers[layer];
        let over = l.offset + len - self.capacity;
        if over <= 0 {
            return Ok(());
        }
        let drop = over.max((self.capacity - keep) / 4).min(l.offset - keep);
        let moved = l.offset - keep - drop;
        l.keys.move_slots(keep + drop, keep, moved)?;
        l.values.move_slots(keep + drop, keep, moved)?;
        l.offset -= drop;
        l.dropped += drop;
        Ok(())
    }

    /// Makes this cache hold the first `len` tokens `src` holds (copied; `src` is left as
    /// it is): a shared prefix taken over without recomputing it.
    pub fn copy_prefix(&mut self, src: &KvCache, len: i32) -> Result<()> {
        // The model identity covers the shapes and dtype (caches made by `Model::new_cache`).
        if self.layers.len() != src.layers.len() || self.model != src.model {
            bail!(IncompatibleCache, "the two caches belong to different models");
        }
        if src.dropped() > 0 || self.window.is_some() {
            bail!(InvalidArgument, "windowed caches do not share prefixes");
        }
        if self.batch != 1 || src.batch != 1 || self.left_padding.is_some() || src.left_padding.is_some() {
            bail!(
                InvalidArgument,
                "prefixes are copied between one-row caches without padding"
            );
        }
        if len < 0 || len > src.offset() || len > self.capacity {
            bail!(
                InvalidArgument,
                "cannot copy {len} tokens from a cache of {} into one of capacity {}",
                src.offset(),
                self.capacity
            );
        }
        for (dst, from) in self.layers.iter_mut().zip(&src.layers) {
            dst.keys.reserve(len, self.capacity)?;
            dst.values.reserve(len, self.capacity)?;
            dst.keys.copy_from(&from.keys, len)?;
            dst.values.copy_from(&from.values, len)?;
            dst.offset = len;
        }
        Ok(())
    }

    /// Each layer's keys and values up to its offset (dequantized from a quantized cache).
    pub fn held(&self) -> Result<Vec<(Array, Array)>> {
        self.layers
            .iter()
            .map(|l| Ok((l.keys.read(l.offset)?, l.values.read(l.offset)?)))
            .collect()
    }

    /// Every cache array, for evaluating them together.
    pub fn arrays(&self) -> Vec<&Array> {
        self.layers
            .iter()
            .flat_map(|l| l.keys.arrays().into_iter().chain(l.values.arrays()))
            .collect()
    }

    /// Slots layer `layer`'s buffers hold so far (they grow by `KV_STEP`s to the capacity).
    pub fn layer_slots(&self, layer: usize) -> i32 {
        self.layers[layer].keys.slots()
    }

    /// Bytes the cache takes when full (its buffers grow to that as they fill).
    pub fn nbytes(&self) -> usize {
        let capacity = self.capacity as usize;
        self.layers
            .iter()
            .flat_map(|l| [&l.keys, &l.values])
            .map(|b| b.arrays().iter().map(|a| a.nbytes()).sum::<usize>() / b.slots() as usize * capacity)
            .sum()
    }
}
