//! Reading `.safetensors` files: the header is validated in full (offsets, sizes, dtypes)
//! before any array is made, and tensors are copied into MLX straight from a memory map.
//! Writing them: arrays and a string metadata map, through the `safetensors` crate.

use crate::array::{element_count, Array};
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use memmap2::Mmap;
use safetensors::SafeTensors;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Name, dtype and shape of one tensor, known without reading its data.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<i32>,
    pub nbytes: usize,
    /// Byte offset of the data within the file.
    pub offset: usize,
}

/// An opened, validated safetensors file.
pub struct SafetensorsFile {
    path: PathBuf,
    mmap: Mmap,
    infos: Vec<TensorInfo>,
    metadata: HashMap<String, String>,
}

fn to_dtype(d: safetensors::Dtype) -> Option<Dtype> {
    use safetensors::Dtype as S;
    Some(match d {
        S::BOOL => Dtype::Bool,
        S::U8 => Dtype::Uint8,
        S::I8 => Dtype::Int8,
        S::U16 => Dtype::Uint16,
        S::I16 => Dtype::Int16,
        S::U32 => Dtype::Uint32,
        S::I32 => Dtype::Int32,
        S::U64 => Dtype::Uint64,
        S::I64 => Dtype::Int64,
        S::F16 => Dtype::Float16,
        S::BF16 => Dtype::Bfloat16,
        S::F32 => Dtype::Float32,
        S::F64 => Dtype::Float64,
        _ => return None,
    })
}

impl SafetensorsFile {
    pub fn open(path: impl AsRef<Path>) -> Result<SafetensorsFile> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        // SAFETY: the file is opened read-only; a concurrent writer could change bytes under
        // us, which at worst yields wrong weights, never memory unsafety in Rust code here.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        let infos = Self::read_infos(&path, &mmap)?;
        let (_, header) = SafeTensors::read_metadata(&mmap)
            .map_err(|e| Error::InvalidFile(format!("{}: {e}", path.display())))?;
        let metadata = header.metadata().clone().unwrap_or_default();
        Ok(SafetensorsFile {
            path,
            mmap,
            infos,
            metadata,
        })
    }

    /// The header's `__metadata__` strings (empty if it has none).
    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    fn read_infos(path: &Path, bytes: &[u8]) -> Result<Vec<TensorInfo>> {
        let bad = |msg: String| Error::InvalidFile(format!("{}: {msg}", path.display()));
        let st =
            SafeTensors::deserialize(bytes).map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
        let mut infos = Vec::with_capacity(st.len());
        for (name, view) in st.iter() {
            let dtype = to_dtype(view.dtype())
                .ok_or_else(|| bad(format!("tensor {name} has unsupported dtype {:?}", view.dtype())))?;
            let shape = view
                .shape()
                .iter()
                .map(|&d| {
                    i32::try_from(d).map_err(|_| bad(format!("tensor {name} has a dimension over 2^31")))
                })
                .collect::<Result<Vec<i32>>>()?;
            let nbytes = view.data().len();
            let offset = view.data().as_ptr() as usize - bytes.as_ptr() as usize;
            if element_count(&shape)? * dtype.size() != nbytes {
                return Err(bad(format!("tensor {name}: data size does not match its shape")));
            }
            infos.push(TensorInfo {
                name: name.to_string(),
                dtype,
                shape,
                nbytes,
                offset,
            });
        }
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(infos)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every tensor, sorted by name.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.infos
    }

    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        let i = self.infos.binary_search_by(|i| i.name.as_str().cmp(name)).ok()?;
        Some(&self.infos[i])
    }

    /// Copies one tensor into a new MLX array, then lets the kernel drop the file pages it
    /// read: mapped pages count in the process's resident memory, and a load would
    /// otherwise hold the whole checkpoint twice at its end.
    pub fn load(&self, name: &str) -> Result<Array> {
        let info = self
            .info(name)
            .ok_or_else(|| Error::InvalidFile(format!("{}: no tensor {name}", self.path.display())))?;
        let array = Array::from_bytes(
            &self.mmap[info.offset..info.offset + info.nbytes],
            &info.shape,
            info.dtype,
        )?;
        // SAFETY: the bytes were copied and no borrow of the range is left; a read-only file
        // mapping reads the file again if a page (shared with a neighbour) is touched later.
        #[cfg(unix)]
        unsafe {
            let _ = self.mmap.unchecked_advise_range(
                memmap2::UncheckedAdvice::DontNeed,
                info.offset,
                info.nbytes,
            );
        }
        Ok(array)
    }
}

fn from_dtype(d: Dtype) -> Result<safetensors::Dtype> {
    use safetensors::Dtype as S;
    Ok(match d {
        Dtype::Bool => S::BOOL,
        Dtype::Uint8 => S::U8,
        Dtype::Int8 => S::I8,
        Dtype::Uint16 => S::U16,
        Dtype::Int16 => S::I16,
        Dtype::Uint32 => S::U32,
        Dtype::Int32 => S::I32,
        Dtype::Uint64 => S::U64,
        Dtype::Int64 => S::I64,
        Dtype::Float16 => S::F16,
        Dtype::Bfloat16 => S::BF16,
        Dtype::Float32 => S::F32,
        Dtype::Float64 => S::F64,
        other => {
            return Err(Error::InvalidArgument(format!(
                "{} cannot be saved as safetensors",
                other.name()
            )))
        }
    })
}

/// One array's bytes as the `safetensors` crate's writer takes them.
struct Bytes {
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl safetensors::View for &Bytes {
    fn dtype(&self) -> safetensors::Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// Writes `tensors` (evaluated here) and `metadata` to `path` as safetensors: into a
/// temporary file first, renamed over `path` once complete.
pub fn save(
    path: impl AsRef<Path>,
    tensors: &[(String, &Array)],
    metadata: HashMap<String, String>,
) -> Result<()> {
    let path = path.as_ref();
    let views = tensors
        .iter()
        .map(|(name, a)| {
            Ok((
                name.clone(),
                Bytes {
                    dtype: from_dtype(a.dtype())?,
                    shape: a.shape().iter().map(|&d| d as usize).collect(),
                    data: a.to_bytes()?,
                },
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let io = |e: &dyn std::fmt::Display| Error::Io(format!("{}: {e}", path.display()));
    let partial = path.with_extension("partial");
    safetensors::serialize_to_file(
        views.iter().map(|(n, b)| (n.as_str(), b)),
        Some(metadata),
        &partial,
    )
    .map_err(|e| io(&e))?;
    std::fs::rename(&partial, path).map_err(|e| io(&e))
}
