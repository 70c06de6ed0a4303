//! `Array`: an owned handle to an MLX array (a node of the lazy graph).
//!
//! An `Array` is `!Send`: MLX state belongs to the worker thread that made it. To move one
//! across threads, wrap it in [`crate::Pinned`].

use crate::dtype::{Dtype, Element};
use crate::error::{Error, Result};
use crate::ffi::bridge;
use crate::invalid;
use cxx::UniquePtr;

pub struct Array {
    pub(crate) raw: UniquePtr<bridge::Array>,
}

impl Clone for Array {
    /// Cheap: both handles share one graph node and buffer.
    fn clone(&self) -> Self {
        Array {
            raw: bridge::clone_array(&self.raw),
        }
    }
}

impl std::fmt::Debug for Array {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Array<{:?} {:?}>", self.dtype(), self.shape())
    }
}

pub(crate) fn wrap(raw: std::result::Result<UniquePtr<bridge::Array>, cxx::Exception>) -> Result<Array> {
    Ok(Array { raw: raw? })
}

/// Number of elements of `shape`, rejecting negative or overflowing dimensions.
pub fn element_count(shape: &[i32]) -> Result<usize> {
    shape.iter().try_fold(1usize, |acc, &d| {
        let d = usize::try_from(d).map_err(|_| invalid!("negative dimension {d} in shape {shape:?}"))?;
        acc.checked_mul(d)
            .ok_or_else(|| invalid!("shape {shape:?} is too large"))
    })
}

impl Array {
    /// Copies `bytes` (row-major, native endian) into a new array.
    pub fn from_bytes(bytes: &[u8], shape: &[i32], dtype: Dtype) -> Result<Array> {
        let expected = element_count(shape)?
            .checked_mul(dtype.size())
            .ok_or_else(|| invalid!("shape {shape:?} is too large"))?;
        if expected != bytes.len() {
            return Err(invalid!(
                "{} bytes do not fill shape {shape:?} of {} ({expected} bytes)",
                bytes.len(),
                dtype.name()
            ));
        }
        wrap(bridge::from_bytes(bytes, shape, dtype as u8))
    }

    pub fn from_slice<T: Element>(data: &[T], shape: &[i32]) -> Result<Array> {
        // SAFETY: `Element` types are plain numbers without padding.
        let bytes =
            unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<u8>(), std::mem::size_of_val(data)) };
        Self::from_bytes(bytes, shape, T::DTYPE)
    }

    pub fn scalar<T: Element + Into<f64>>(value: T) -> Result<Array> {
        Self::full(&[], value.into(), T::DTYPE)
    }

    pub fn full(shape: &[i32], value: f64, dtype: Dtype) -> Result<Array> {
        element_count(shape)?;
        wrap(bridge::full(shape, value, dtype as u8))
    }

    pub fn zeros(shape: &[i32], dtype: Dtype) -> Result<Array> {
        Self::full(shape, 0.0, dtype)
    }

    pub fn arange(start: f64, stop: f64, step: f64, dtype: Dtype) -> Result<Array> {
        wrap(bridge::arange(start, stop, step, dtype as u8))
    }

    pub fn shape(&self) -> Vec<i32> {
        bridge::shape(&self.raw)
    }

    pub fn ndim(&self) -> usize {
        self.shape().len()
    }

    /// Size of axis `axis` (negative counts from the end).
    pub fn dim(&self, axis: isize) -> Result<i32> {
        let shape = self.shape();
        let n = shape.len() as isize;
        let i = if axis < 0 { n + axis } else { axis };
        if !(0..n).contains(&i) {
            return Err(invalid!("axis {axis} out of range for shape {shape:?}"));
        }
        Ok(shape[i as usize])
    }

    pub fn dtype(&self) -> Dtype {
        Dtype::from_code(bridge::dtype(&self.raw)).expect("MLX returned an unknown dtype")
    }

    /// The name of the MLX primitive that computes this node ("" once evaluated, or for a
    /// constant): lets tests see which kernel a graph uses.
    pub fn primitive_name(&self) -> String {
        bridge::primitive_name(&self.raw)
    }

    pub fn nbytes(&self) -> usize {
        bridge::nbytes(&self.raw)
    }

    /// Evaluates the graph behind this array and copies its data out (row-major).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = vec![0u8; self.nbytes()];
        self.copy_to(&mut out)?;
        Ok(out)
    }

    /// Like [`Array::to_bytes`] into a caller's buffer of exactly `nbytes()` bytes.
    pub fn copy_to(&self, out: &mut [u8]) -> Result<()> {
        if out.len() != self.nbytes() {
            return Err(invalid!(
                "buffer of {} bytes for an array of {}",
                out.len(),
                self.nbytes()
            ));
        }
        Ok(bridge::to_bytes(&self.raw, out)?)
    }

    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        if self.dtype() != T::DTYPE {
            return Err(invalid!(
                "array is {}, not {}",
                self.dtype().name(),
                T::DTYPE.name()
            ));
        }
        let bytes = self.to_bytes()?;
        let mut out = vec![T::default(); bytes.len() / std::mem::size_of::<T>()];
        // SAFETY: `out` has exactly `bytes.len()` bytes and `T` is plain data.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr().cast::<u8>(), bytes.len()) };
        Ok(out)
    }

    /// The single value of a one-element array, as f64.
    pub fn item_f64(&self) -> Result<f64> {
        let a = self.astype(Dtype::Float64)?;
        match a.to_vec::<f64>()?.as_slice() {
            [v] => Ok(*v),
            other => Err(invalid!("item of an array with {} elements", other.len())),
        }
    }

    pub fn eval(&self) -> Result<()> {
        eval(&[self])
    }
}

pub(crate) fn to_vec(arrays: &[&Array]) -> UniquePtr<bridge::ArrayVec> {
    let mut v = bridge::vec_new();
    for a in arrays {
        bridge::vec_push(v.pin_mut(), &a.raw);
    }
    v
}

pub(crate) fn from_vec(v: &bridge::ArrayVec) -> Result<Vec<Array>> {
    (0..bridge::vec_len(v))
        .map(|i| wrap(bridge::vec_get(v, i)))
        .collect()
}

pub(crate) fn with_vec<T>(
    arrays: &[&Array],
    f: impl FnOnce(&bridge::ArrayVec) -> Result<T, cxx::Exception>,
) -> Result<T> {
    f(&to_vec(arrays)).map_err(Error::from)
}

/// Evaluates all arrays together (one pass over their shared graph).
pub fn eval(arrays: &[&Array]) -> Result<()> {
    with_vec(arrays, bridge::eval)
}

/// Starts evaluating in the background; a later `eval`/read waits for it.
pub fn async_eval(arrays: &[&Array]) -> Result<()> {
    with_vec(arrays, bridge::async_eval)
}

pub fn synchronize() -> Result<()> {
    Ok(bridge::synchronize()?)
}
