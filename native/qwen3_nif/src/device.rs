//! Device availability and MLX memory: statistics, cache limits, the baseline probe.

use crate::args::{parse_device, worker_for};
use crate::dispatch::{dispatch, immediate_error};
use crate::reply::Reply;
use mlx::{memory, Device};
use rustler::{Atom, Env, Term};

rustler::atoms! { active, peak, cache }

#[rustler::nif]
fn device_available(env: Env, device: Atom) -> bool {
    parse_device(device, env).is_ok_and(Device::is_available)
}

/// Runs `f` on the device's worker (MLX memory state is per process but read on the worker).
fn on_device<'a, T, F>(env: Env<'a>, device: Atom, f: F) -> Term<'a>
where
    T: crate::reply::IntoReply,
    F: FnOnce() -> crate::error::NifResult<T> + Send + 'static,
{
    match worker_for(device, env) {
        Ok(worker) => dispatch(env, &worker, f),
        Err(e) => immediate_error(env, e),
    }
}

/// A job that does nothing: measures one NIF → worker → message round trip.
#[rustler::nif]
fn device_ping(env: Env, device: Atom) -> Term {
    on_device(env, device, || Ok(()))
}

#[rustler::nif]
fn memory_stats(env: Env, device: Atom) -> Term {
    on_device(env, device, || {
        let s = memory::stats();
        Ok(Reply::term(vec![
            (active(), s.active as u64),
            (peak(), s.peak as u64),
            (cache(), s.cache as u64),
        ]))
    })
}

#[rustler::nif]
fn memory_reset_peak(env: Env, device: Atom) -> Term {
    on_device(env, device, || {
        memory::reset_peak();
        Ok(())
    })
}

#[rustler::nif]
fn memory_clear_cache(env: Env, device: Atom) -> Term {
    on_device(env, device, || {
        memory::clear_cache();
        Ok(())
    })
}

#[rustler::nif]
fn memory_set_cache_limit(env: Env, device: Atom, bytes: u64) -> Term {
    on_device(env, device, move || {
        Ok(memory::set_cache_limit(bytes as usize) as u64)
    })
}

#[rustler::nif]
fn memory_set_memory_limit(env: Env, device: Atom, bytes: u64) -> Term {
    on_device(env, device, move || {
        Ok(memory::set_memory_limit(bytes as usize) as u64)
    })
}
