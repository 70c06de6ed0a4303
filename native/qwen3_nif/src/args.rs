//! Decoding the atoms NIFs take: devices (and their workers) and dtypes.

use crate::error::{NifError, NifResult};
use mlx::{Device, Dtype, Worker};
use rustler::{Atom, Env};
use std::sync::Arc;

fn name(atom: Atom, env: Env) -> String {
    atom.to_term(env).atom_to_string().unwrap_or_default()
}

pub fn parse_device(device: Atom, env: Env) -> NifResult<Device> {
    let name = name(device, env);
    Device::from_name(&name)
        .ok_or_else(|| NifError::invalid(format!("unknown device :{name} (use :cpu or :gpu)")))
}

pub fn worker_for(device: Atom, env: Env) -> NifResult<Arc<Worker>> {
    Ok(Worker::for_device(parse_device(device, env)?)?)
}

pub fn parse_dtype(dtype: Atom, env: Env) -> NifResult<Dtype> {
    let name = name(dtype, env);
    Dtype::from_name(&name).ok_or_else(|| NifError::invalid(format!("unknown dtype :{name}")))
}
