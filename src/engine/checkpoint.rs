//! Weights from Hugging Face safetensors files: one `model.safetensors`, or shards listed
//! by `model.safetensors.index.json`. From a folder natively, or from byte buffers (the
//! browser). Every error names the file, and the tensor where there is one.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::Metadata;
use safetensors::{Dtype, SafeTensorError, SafeTensors};
use serde::Deserialize;

use super::EngineError;

/// One tensor, as f32.
pub struct TensorData {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    /// The file stored it as f16: every value is exact in f16, so a backend may keep it in
    /// f16 at no loss ([`crate::engine::backend::Backend::upload_linear_weight_f16`]).
    pub f16: bool,
}

/// All tensors of a checkpoint by name, with the file each came from.
pub struct Checkpoint {
    tensors: HashMap<String, (String, Stored)>,
    /// How the files were named, for "missing tensor" errors.
    source: String,
}

/// A tensor as the checkpoint holds it until [`Checkpoint::take`]: f16 stays f16 (half the
/// memory while the model is built, and a backend may keep it so), the rest is f32.
struct Stored {
    shape: Vec<usize>,
    data: StoredData,
}

enum StoredData {
    F32(Vec<f32>),
    F16(Vec<half::f16>),
}

#[derive(Deserialize)]
struct ShardIndex {
    weight_map: HashMap<String, String>,
}

impl Checkpoint {
    pub fn empty(source: &str) -> Self {
        Self {
            tensors: HashMap::new(),
            source: source.to_string(),
        }
    }

    /// Adds every tensor of one safetensors file.
    pub fn add_safetensors(&mut self, file: &str, bytes: &[u8]) -> Result<(), EngineError> {
        self.add_safetensors_from(file, &bytes)
    }

    /// Adds every tensor of one safetensors file read from `src` piece by piece: the header,
    /// then each tensor's bytes straight into its buffer (f32; f16 stays f16 until
    /// [`Checkpoint::take`]). Loading thus holds the tensors
    /// read so far plus one small buffer, never a second copy of the file (in the browser the
    /// file stays in the JS heap).
    pub fn add_safetensors_from(&mut self, file: &str, src: &dyn Bytes) -> Result<(), EngineError> {
        let ckpt_err = |reason: String| EngineError::Checkpoint {
            file: file.to_string(),
            reason,
        };
        let (header_len, metadata) = read_header(src).map_err(|e| {
            let mut head = [0u8; 8];
            let n = head.len().min(src.len());
            src.read_into(0, &mut head[..n]);
            ckpt_err(if looks_like_pickle(&head[..n]) {
                "this is a PyTorch pickle file, not safetensors; pickle checkpoints cannot be loaded \
                 safely — convert it to model.safetensors"
                    .to_string()
            } else {
                format!("not a valid safetensors file ({e})")
            })
        })?;
        let start = N_LEN + header_len;
        let mut scratch: Vec<u8> = Vec::new();
        for name in metadata.offset_keys() {
            let Some(info) = metadata.info(&name) else {
                continue;
            };
            let t_err = |reason: String| EngineError::Tensor {
                file: file.to_string(),
                tensor: name.clone(),
                reason,
            };
            let (begin, end) = (start + info.data_offsets.0, start + info.data_offsets.1);
            let data = match info.dtype {
                Dtype::F32 => {
                    let mut data = vec![0f32; (end - begin) / 4];
                    src.read_into(begin, f32_bytes_mut(&mut data));
                    if cfg!(target_endian = "big") {
                        for x in &mut data {
                            *x = f32::from_bits(u32::from_le(x.to_bits()));
                        }
                    }
                    StoredData::F32(data)
                }
                Dtype::F16 | Dtype::BF16 => {
                    scratch.resize(end - begin, 0);
                    src.read_into(begin, &mut scratch);
                    let half = scratch.chunks_exact(2);
                    if info.dtype == Dtype::F16 {
                        StoredData::F16(half.map(|c| half::f16::from_le_bytes([c[0], c[1]])).collect())
                    } else {
                        StoredData::F32(
                            half.map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                                .collect(),
                        )
                    }
                }
                // Integer buffers (e.g. BERT's `position_ids`) are not weights.
                Dtype::I64 | Dtype::I32 | Dtype::U8 | Dtype::BOOL => continue,
                other => {
                    return Err(t_err(format!(
                        "dtype {other:?} is not supported (F32, F16, BF16)"
                    )))
                }
            };
            let shape = info.shape.clone();
            self.tensors
                .insert(name.clone(), (file.to_string(), Stored { shape, data }));
        }
        Ok(())
    }

    /// From named file contents, as a folder or a file picker gives them: either one
    /// `*.safetensors`, or an index and all its shards.
    pub fn from_files(files: &[(String, Vec<u8>)]) -> Result<Self, EngineError> {
        let sources: Vec<(String, &dyn Bytes)> =
            files.iter().map(|(n, b)| (n.clone(), b as &dyn Bytes)).collect();
        Self::from_sources(&sources)
    }

    /// [`Checkpoint::from_files`] with contents that are read as needed ([`Bytes`]): the
    /// index is read whole, the safetensors files tensor by tensor.
    pub fn from_sources(files: &[(String, &dyn Bytes)]) -> Result<Self, EngineError> {
        let base = |n: &str| n.rsplit(['/', '\\']).next().unwrap_or(n).to_string();
        if let Some((index_name, index_bytes)) =
            files.iter().find(|(n, _)| n.ends_with(".safetensors.index.json"))
        {
            let index: ShardIndex =
                serde_json::from_slice(&index_bytes.to_vec()).map_err(|e| EngineError::Checkpoint {
                    file: index_name.clone(),
                    reason: format!("not a valid shard index ({e})"),
                })?;
            let mut shards: Vec<&String> = index.weight_map.values().collect();
            shards.sort();
            shards.dedup();
            let mut ckpt = Checkpoint::empty(index_name);
            for shard in shards {
                let (name, bytes) =
                    files
                        .iter()
                        .find(|(n, _)| base(n) == *shard)
                        .ok_or_else(|| EngineError::Checkpoint {
                            file: index_name.clone(),
                            reason: format!("lists shard {shard}, which is missing"),
                        })?;
                ckpt.add_safetensors_from(name, *bytes)?;
            }
            for (tensor, shard) in &index.weight_map {
                if !ckpt.tensors.contains_key(tensor) && !tensor.ends_with("position_ids") {
                    return Err(EngineError::Tensor {
                        file: shard.clone(),
                        tensor: tensor.clone(),
                        reason: format!("listed in {index_name} but not in the shard"),
                    });
                }
            }
            return Ok(ckpt);
        }
        let mut st: Vec<_> = files
            .iter()
            .filter(|(n, _)| n.ends_with(".safetensors"))
            .collect();
        // A folder may hold other safetensors files (ours: goldens, trained heads).
        if let Some(main) = st.iter().find(|(n, _)| base(n) == "model.safetensors") {
            st = vec![*main];
        }
        match st.as_slice() {
            [(name, bytes)] => {
                let mut ckpt = Checkpoint::empty(name);
                ckpt.add_safetensors_from(name, *bytes)?;
                Ok(ckpt)
            }
            [] => {
                let pickle = files
                    .iter()
                    .find(|(n, _)| n.ends_with(".bin") || n.ends_with(".pt") || n.ends_with(".pth"));
                Err(EngineError::Checkpoint {
                    file: pickle
                        .map(|(n, _)| n.clone())
                        .unwrap_or_else(|| "model.safetensors".into()),
                    reason: if pickle.is_some() {
                        "only a PyTorch pickle checkpoint is here; pickle cannot be loaded safely — \
                         provide model.safetensors"
                            .into()
                    } else {
                        "no weights: model.safetensors is missing".into()
                    },
                })
            }
            _ => Err(EngineError::Checkpoint {
                file: st[0].0.clone(),
                reason: "several .safetensors files but no model.safetensors.index.json to join them".into(),
            }),
        }
    }

    /// From a checkpoint folder.
    pub fn from_dir(dir: &Path) -> Result<Self, EngineError> {
        Self::from_files(&read_model_dir(dir)?)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Removes and returns a tensor the file stored as f16, as it is, checking its shape;
    /// `None` (and the tensor stays) where it was stored otherwise. For a table that a
    /// backend keeps in f16: it is never widened whole, not even for a moment (BERT's word
    /// embeddings, its largest tensor, would otherwise set the worker's peak memory).
    pub fn take_f16(&mut self, name: &str, shape: &[usize]) -> Result<Option<Vec<half::f16>>, EngineError> {
        if !matches!(
            self.tensors.get(name),
            Some((
                _,
                Stored {
                    data: StoredData::F16(_),
                    ..
                }
            ))
        ) {
            return Ok(None);
        }
        let t = self.take_stored(name, shape)?;
        match t.data {
            StoredData::F16(data) => Ok(Some(data)),
            StoredData::F32(_) => unreachable!("checked above"),
        }
    }

    /// Removes and returns a tensor as f32, checking its shape. An f16 one is widened here,
    /// one tensor at a time, so loading never holds an f16 checkpoint whole in f32.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<TensorData, EngineError> {
        let t = self.take_stored(name, shape)?;
        let (data, f16) = match t.data {
            StoredData::F32(data) => (data, false),
            StoredData::F16(data) => (data.iter().map(|h| h.to_f32()).collect(), true),
        };
        Ok(TensorData {
            shape: t.shape,
            data,
            f16,
        })
    }

    fn take_stored(&mut self, name: &str, shape: &[usize]) -> Result<Stored, EngineError> {
        let (file, t) = self.tensors.remove(name).ok_or_else(|| EngineError::Tensor {
            file: self.source.clone(),
            tensor: name.to_string(),
            reason: "missing".to_string(),
        })?;
        if t.shape != shape {
            return Err(EngineError::Tensor {
                file,
                tensor: name.to_string(),
                reason: format!("shape {:?} does not match the config's {:?}", t.shape, shape),
            });
        }
        Ok(t)
    }

    /// True when any tensor name starts with `prefix` (e.g. "bert.").
    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.tensors.keys().any(|k| k.starts_with(prefix))
    }
}

/// The files of a checkpoint folder that loading looks at (`*.json`, `*.safetensors`), as
/// (path, contents) sorted by path. A `*.bin` pickle is listed with no contents: it is only
/// named, to say why it is refused, never read.
pub fn read_model_dir(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, EngineError> {
    let io = |path: &Path, source| EngineError::Io {
        file: path.display().to_string(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))?.flatten() {
        let path = entry.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let wanted = name.ends_with(".json") || name.ends_with(".safetensors") || name.ends_with(".bin");
        if !wanted || !path.is_file() {
            continue;
        }
        let bytes = if name.ends_with(".bin") {
            Vec::new()
        } else {
            std::fs::read(&path).map_err(|e| io(&path, e))?
        };
        files.push((path.display().to_string(), bytes));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

/// File contents that can be read a range at a time: a byte slice natively, a JS buffer in
/// the browser (so that a model's file need not be copied into the wasm memory whole).
pub trait Bytes {
    fn len(&self) -> usize;
    /// Copies `out.len()` bytes from `offset` into `out`; the range is within `len()`.
    fn read_into(&self, offset: usize, out: &mut [u8]);
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The whole contents, copied.
    fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.len()];
        self.read_into(0, &mut v);
        v
    }
    /// The whole contents, moved out where they already are a `Vec<u8>`.
    fn into_vec(self: Box<Self>) -> Vec<u8> {
        self.to_vec()
    }
}

impl Bytes for &[u8] {
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }
    fn read_into(&self, offset: usize, out: &mut [u8]) {
        out.copy_from_slice(&self[offset..offset + out.len()]);
    }
}

impl Bytes for Vec<u8> {
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn read_into(&self, offset: usize, out: &mut [u8]) {
        out.copy_from_slice(&self[offset..offset + out.len()]);
    }
    fn to_vec(&self) -> Vec<u8> {
        self.clone()
    }
    fn into_vec(self: Box<Self>) -> Vec<u8> {
        *self
    }
}

const N_LEN: usize = 8;
/// As in the safetensors crate: a longer header is refused before it is read.
const MAX_HEADER_SIZE: u64 = 100_000_000;

/// The header of a safetensors file: its length and the tensors it lists, checked as
/// `SafeTensors::deserialize` checks the whole file (same errors), but reading only the
/// header's bytes.
fn read_header(src: &dyn Bytes) -> Result<(usize, Metadata), SafeTensorError> {
    let total = src.len();
    let mut head = [0u8; N_LEN];
    let n = N_LEN.min(total);
    src.read_into(0, &mut head[..n]);
    if n < N_LEN {
        return SafeTensors::read_metadata(&head[..n]);
    }
    // What `read_metadata` looks at: the length, and the header when the file holds it.
    let declared = u64::from_le_bytes(head);
    let want = usize::try_from(declared)
        .ok()
        .and_then(|d| d.checked_add(N_LEN))
        .filter(|&w| w <= total && declared <= MAX_HEADER_SIZE)
        .unwrap_or(N_LEN);
    let mut header = vec![0u8; want];
    src.read_into(0, &mut header);
    match SafeTensors::read_metadata(&header) {
        // Only the header was given, so a valid header with data reads as "incomplete":
        // check the data's length against the file's instead.
        Err(SafeTensorError::MetadataIncompleteBuffer) if want > N_LEN => {
            let meta: Metadata = serde_json::from_slice(&header[N_LEN..])
                .map_err(SafeTensorError::InvalidHeaderDeserialization)?;
            if want + meta.data_len() != total {
                return Err(SafeTensorError::MetadataIncompleteBuffer);
            }
            Ok((want - N_LEN, meta))
        }
        Ok((len, meta)) if want + meta.data_len() != total => {
            let _ = len;
            Err(SafeTensorError::MetadataIncompleteBuffer)
        }
        other => other,
    }
}

/// The f32s' bytes, to be written in place (f32 has no invalid bit patterns).
fn f32_bytes_mut(data: &mut [f32]) -> &mut [u8] {
    // SAFETY: u8 has alignment 1, the length covers exactly the f32s' bytes, and every
    // bit pattern is a valid f32.
    unsafe { std::slice::from_raw_parts_mut(data.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(data)) }
}

/// PyTorch's `torch.save` writes a zip (`PK\x03\x04`) or a raw pickle (`\x80` + protocol).
fn looks_like_pickle(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || matches!(bytes, [0x80, 2..=5, ..])
}
