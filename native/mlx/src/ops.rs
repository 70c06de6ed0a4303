//! Graph-building operations. Nothing here computes: results are lazy until `eval`.

use crate::array::{from_vec, with_vec, wrap, Array};
use crate::dtype::Dtype;
use crate::error::Result;
use crate::ffi::bridge;
use crate::invalid;

// `Unary`, `Binary` and `Reduce`, generated from ops.txt by build.rs.
include!(concat!(env!("OUT_DIR"), "/ops_generated.rs"));

impl Array {
    pub fn unary(&self, op: Unary) -> Result<Array> {
        wrap(bridge::unary(op.code(), &self.raw))
    }

    pub fn binary(&self, op: Binary, other: &Array) -> Result<Array> {
        wrap(bridge::binary(op.code(), &self.raw, &other.raw))
    }

    pub fn add(&self, other: &Array) -> Result<Array> {
        self.binary(Binary::Add, other)
    }

    pub fn multiply(&self, other: &Array) -> Result<Array> {
        self.binary(Binary::Multiply, other)
    }

    pub fn matmul(&self, other: &Array) -> Result<Array> {
        wrap(bridge::matmul(&self.raw, &other.raw))
    }

    /// `self · wᵀ` for a `[out, in]` weight; one float32 row on the CPU goes through BLAS
    /// sgemv instead of MLX's sgemm (three times the bandwidth on OpenBLAS 0.3.21), and 2–8
    /// rows through a kernel that reads the weights once (see cpp/few_rows.cc).
    pub fn linear(&self, w: &Array) -> Result<Array> {
        wrap(bridge::linear(&self.raw, &w.raw))
    }

    /// Whether [`Array::linear`]'s sgemv path is there (a BLAS with `cblas_sgemv` is loaded).
    pub fn has_blas_gemv() -> bool {
        bridge::has_blas_gemv()
    }

    /// Whether [`Array::linear`]'s kernel for 2–8 float32 rows runs here (x86-64 with AVX2
    /// and FMA); elsewhere those products go through MLX's matmul.
    pub fn has_few_rows_kernel() -> bool {
        bridge::few_rows_supported()
    }

    /// `cond ? a : b`, element-wise with broadcasting.
    pub fn select(cond: &Array, a: &Array, b: &Array) -> Result<Array> {
        wrap(bridge::where_(&cond.raw, &a.raw, &b.raw))
    }

    pub fn reduce(&self, op: Reduce, axis: i32, keepdims: bool) -> Result<Array> {
        wrap(bridge::reduce(op.code(), &self.raw, axis, keepdims))
    }

    pub fn reshape(&self, shape: &[i32]) -> Result<Array> {
        wrap(bridge::reshape(&self.raw, shape))
    }

    pub fn transpose(&self, axes: &[i32]) -> Result<Array> {
        wrap(bridge::transpose(&self.raw, axes))
    }

    pub fn astype(&self, dtype: Dtype) -> Result<Array> {
        if self.dtype() == dtype {
            return Ok(self.clone());
        }
        wrap(bridge::astype(&self.raw, dtype as u8))
    }

    pub fn take(&self, indices: &Array, axis: i32) -> Result<Array> {
        wrap(bridge::take(&self.raw, &indices.raw, axis))
    }

    pub fn take_along_axis(&self, indices: &Array, axis: i32) -> Result<Array> {
        wrap(bridge::take_along_axis(&self.raw, &indices.raw, axis))
    }

    pub fn put_along_axis(&self, indices: &Array, values: &Array, axis: i32) -> Result<Array> {
        wrap(bridge::put_along_axis(&self.raw, &indices.raw, &values.raw, axis))
    }

    /// `self[start[0]..stop[0], start[1]..stop[1], …]` over every axis.
    pub fn slice(&self, start: &[i32], stop: &[i32]) -> Result<Array> {
        wrap(bridge::slice(&self.raw, start, stop))
    }

    /// A copy of `self` with `update` written into the box `start..stop`.
    pub fn slice_update(&self, update: &Array, start: &[i32], stop: &[i32]) -> Result<Array> {
        wrap(bridge::slice_update(&self.raw, &update.raw, start, stop))
    }

    pub fn expand_dims(&self, axis: i32) -> Result<Array> {
        wrap(bridge::expand_dims(&self.raw, axis))
    }

    pub fn broadcast_to(&self, shape: &[i32]) -> Result<Array> {
        wrap(bridge::broadcast_to(&self.raw, shape))
    }

    pub fn contiguous(&self) -> Result<Array> {
        wrap(bridge::contiguous(&self.raw))
    }

    pub fn sort(&self, axis: i32) -> Result<Array> {
        wrap(bridge::sort(&self.raw, axis))
    }

    pub fn argsort(&self, axis: i32) -> Result<Array> {
        wrap(bridge::argsort(&self.raw, axis))
    }

    pub fn argpartition(&self, kth: i32, axis: i32) -> Result<Array> {
        wrap(bridge::argpartition(&self.raw, kth, axis))
    }

    pub fn cumsum(&self, axis: i32, reverse: bool, inclusive: bool) -> Result<Array> {
        wrap(bridge::cumsum(&self.raw, axis, reverse, inclusive))
    }
}

pub fn concatenate(arrays: &[&Array], axis: i32) -> Result<Array> {
    if arrays.is_empty() {
        return Err(invalid!("concatenate needs at least one array"));
    }
    with_vec(arrays, |v| bridge::concatenate(v, axis)).map(|raw| Array { raw })
}

pub(crate) fn unpack(v: Result<cxx::UniquePtr<bridge::ArrayVec>, cxx::Exception>) -> Result<Vec<Array>> {
    let v = v?;
    from_vec(&v)
}
