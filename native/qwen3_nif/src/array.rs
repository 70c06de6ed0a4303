//! Arrays as BEAM resources, and the NIFs that make, read and combine them.

use crate::args::{parse_dtype, worker_for};
use crate::dispatch::{dispatch, immediate_error};
use crate::error::{NifError, NifResult};
use crate::reply::{IntoReply, Reply};
use mlx::{Array, Binary as BinaryOp, Dtype, Pinned, Reduce, Unary, Worker};
use rustler::{Atom, Binary, Env, OwnedBinary, Resource, ResourceArc, Term};
use std::sync::Arc;

/// An MLX array owned by the BEAM. Shape and dtype are copied out when it is made so that
/// reading them never needs the worker.
pub struct ArrayRef {
    pub array: Pinned<Array>,
    pub shape: Vec<i32>,
    pub dtype: Dtype,
}

#[rustler::resource_impl]
impl Resource for ArrayRef {}

impl ArrayRef {
    /// Must run on `worker`'s thread.
    pub fn new(array: Array, worker: &Arc<Worker>) -> NifResult<ResourceArc<ArrayRef>> {
        let (shape, dtype) = (array.shape(), array.dtype());
        Ok(ResourceArc::new(ArrayRef {
            array: Pinned::new(array, worker)?,
            shape,
            dtype,
        }))
    }

    pub fn worker(&self) -> &Arc<Worker> {
        self.array.worker()
    }

    pub fn get(&self) -> NifResult<&Array> {
        Ok(self.array.get()?)
    }
}

/// A job's array becomes a resource on the worker that made it.
impl IntoReply for Array {
    fn into_reply(self, worker: &Arc<Worker>) -> NifResult<Reply> {
        Ok(Reply::term(ArrayRef::new(self, worker)?))
    }
}

/// All arrays of one call must live on the same device's worker.
pub fn same_worker(arrays: &[&ArrayRef]) -> NifResult<Arc<Worker>> {
    let first = arrays
        .first()
        .ok_or_else(|| NifError::invalid("no arrays given"))?
        .worker();
    if arrays.iter().any(|a| !Arc::ptr_eq(a.worker(), first)) {
        return Err(NifError::new("wrong_device", "arrays live on different devices"));
    }
    Ok(first.clone())
}

/// Runs `job` on the worker of `arrays`, or replies with the error at once.
pub fn on_arrays<'a, T, F>(env: Env<'a>, arrays: &[&ArrayRef], job: F) -> Term<'a>
where
    T: IntoReply,
    F: FnOnce() -> NifResult<T> + Send + 'static,
{
    match same_worker(arrays) {
        Ok(worker) => dispatch(env, &worker, job),
        Err(e) => immediate_error(env, e),
    }
}

#[rustler::nif(schedule = "DirtyCpu")]
fn array_from_binary<'a>(env: Env<'a>, data: Binary, shape: Vec<i32>, dtype: Atom, device: Atom) -> Term<'a> {
    let prepared = (|| Ok((parse_dtype(dtype, env)?, worker_for(device, env)?)))();
    match prepared {
        Ok((dtype, worker)) => {
            let bytes = data.as_slice().to_vec();
            dispatch(env, &worker, move || {
                Ok(Array::from_bytes(&bytes, &shape, dtype)?)
            })
        }
        Err(e) => immediate_error(env, e),
    }
}

/// Runs `f` over a list of arrays (all on one device) on their worker.
fn on_many<'a, T, F>(env: Env<'a>, arrays: Vec<ResourceArc<ArrayRef>>, f: F) -> Term<'a>
where
    T: IntoReply,
    F: FnOnce(&[&Array]) -> NifResult<T> + Send + 'static,
{
    let refs: Vec<&ArrayRef> = arrays.iter().map(|a| &**a).collect();
    let owned = arrays.clone();
    on_arrays(env, &refs, move || {
        let list = owned.iter().map(|a| a.get()).collect::<NifResult<Vec<_>>>()?;
        f(&list)
    })
}

/// Runs `f` over one array on its worker.
pub fn on_one<'a, T, F>(env: Env<'a>, a: ResourceArc<ArrayRef>, f: F) -> Term<'a>
where
    T: IntoReply,
    F: FnOnce(&Array) -> NifResult<T> + Send + 'static,
{
    let arrays = [&*a];
    let a2 = a.clone();
    on_arrays(env, &arrays, move || f(a2.get()?))
}

/// Runs `f` over two arrays of the same device on their worker.
fn on_two<'a, T, F>(env: Env<'a>, a: ResourceArc<ArrayRef>, b: ResourceArc<ArrayRef>, f: F) -> Term<'a>
where
    T: IntoReply,
    F: FnOnce(&Array, &Array) -> NifResult<T> + Send + 'static,
{
    let arrays = [&*a, &*b];
    let (a2, b2) = (a.clone(), b.clone());
    on_arrays(env, &arrays, move || f(a2.get()?, b2.get()?))
}

#[rustler::nif]
fn array_to_binary(env: Env, a: ResourceArc<ArrayRef>) -> Term {
    on_one(env, a, |array| {
        let mut bin = OwnedBinary::new(array.nbytes());
        array.copy_to(bin.as_mut_slice())?;
        Ok(bin)
    })
}

#[rustler::nif]
fn array_shape(a: ResourceArc<ArrayRef>) -> Vec<i32> {
    a.shape.clone()
}

#[rustler::nif]
fn array_dtype(env: Env, a: ResourceArc<ArrayRef>) -> Atom {
    Atom::from_str(env, a.dtype.name()).expect("dtype names are atoms")
}

#[rustler::nif]
fn array_device(env: Env, a: ResourceArc<ArrayRef>) -> Atom {
    Atom::from_str(env, a.worker().device().name()).expect("device names are atoms")
}

#[rustler::nif]
fn array_eval(env: Env, arrays: Vec<ResourceArc<ArrayRef>>) -> Term {
    on_many(env, arrays, |list| Ok(mlx::eval(list)?))
}

/// Starts computing `arrays` in the background (the next step's graph can be built meanwhile).
#[rustler::nif]
fn array_async_eval(env: Env, arrays: Vec<ResourceArc<ArrayRef>>) -> Term {
    on_many(env, arrays, |list| Ok(mlx::async_eval(list)?))
}

#[rustler::nif]
fn array_binary_op(env: Env, op: Atom, a: ResourceArc<ArrayRef>, b: ResourceArc<ArrayRef>) -> Term {
    let name = op.to_term(env).atom_to_string().unwrap_or_default();
    match BinaryOp::from_name(&name) {
        Some(op) => on_two(env, a, b, move |a, b| Ok(a.binary(op, b)?)),
        None => immediate_error(env, NifError::invalid(format!("unknown binary op :{name}"))),
    }
}

#[rustler::nif]
fn array_matmul(env: Env, a: ResourceArc<ArrayRef>, b: ResourceArc<ArrayRef>) -> Term {
    on_two(env, a, b, |a, b| Ok(a.matmul(b)?))
}

#[rustler::nif]
fn array_softmax(env: Env, a: ResourceArc<ArrayRef>) -> Term {
    on_one(env, a, |a| Ok(a.unary(Unary::Softmax)?))
}

#[rustler::nif]
fn array_sum(env: Env, a: ResourceArc<ArrayRef>, axis: i32, keepdims: bool) -> Term {
    on_one(env, a, move |a| Ok(a.reduce(Reduce::Sum, axis, keepdims)?))
}

#[rustler::nif]
fn array_reshape(env: Env, a: ResourceArc<ArrayRef>, shape: Vec<i32>) -> Term {
    on_one(env, a, move |a| Ok(a.reshape(&shape)?))
}

#[rustler::nif]
fn array_astype<'a>(env: Env<'a>, a: ResourceArc<ArrayRef>, dtype: Atom) -> Term<'a> {
    match parse_dtype(dtype, env) {
        Ok(dtype) => on_one(env, a, move |a| Ok(a.astype(dtype)?)),
        Err(e) => immediate_error(env, e),
    }
}
