//! NIFs for KV caches on disk (`qwen3::saved_cache`): `Qwen3.KVCache.save/2` and `load/3`;
//! and for copying a prefix from one cache into another (`Qwen3.KVCache.copy_prefix/3`).

use crate::dispatch::dispatch;
use crate::model::{cache_of, CacheRef, ModelRef};
use crate::reply::Reply;
use mlx::Pinned;
use rustler::{Env, ResourceArc, Term};
use std::cell::RefCell;
use std::path::PathBuf;

#[rustler::nif]
fn cache_save(env: Env, cache: ResourceArc<CacheRef>, tokens: Vec<u32>, path: String) -> Term {
    let c = cache.clone();
    dispatch(env, cache.cache.worker(), move || {
        Ok(qwen3::saved_cache::save(
            &*cache_of(&c)?,
            &tokens,
            &PathBuf::from(path),
        )?)
    })
}

/// `{cache, tokens}` from a saved cache, for `model`, with room for `max_len` tokens (nil:
/// what it holds + 2048).
#[rustler::nif]
fn model_load_cache(env: Env, model: ResourceArc<ModelRef>, path: String, max_len: Option<i32>) -> Term {
    let m = model.clone();
    let worker = model.worker().clone();
    dispatch(env, model.worker(), move || {
        let (cache, tokens) = qwen3::saved_cache::load(m.model.get()?, &PathBuf::from(path), max_len)?;
        let cache = ResourceArc::new(CacheRef {
            cache: Pinned::new(RefCell::new(Some(cache)), &worker)?,
        });
        Ok((cache, Reply::term(tokens)))
    })
}

#[rustler::nif]
fn cache_copy_prefix(env: Env, dst: ResourceArc<CacheRef>, src: ResourceArc<CacheRef>, len: i32) -> Term {
    if !std::sync::Arc::ptr_eq(dst.cache.worker(), src.cache.worker()) {
        let e = crate::error::NifError::new("wrong_device", "the caches live on different devices");
        return crate::dispatch::immediate_error(env, e);
    }
    let (d, s) = (dst.clone(), src.clone());
    dispatch(env, dst.cache.worker(), move || {
        if std::ptr::eq(&*d, &*s) {
            return Err(crate::error::NifError::invalid("a cache cannot copy from itself"));
        }
        let from = cache_of(&s)?;
        let mut to = cache_of(&d)?;
        to.copy_prefix(&from, len)?;
        // Copied now: a lazy copy would keep `src`'s buffers alive (and copied, not updated
        // in place, at each later write to `src`) until something reads `dst`.
        mlx::eval(&to.arrays())?;
        Ok(())
    })
}
