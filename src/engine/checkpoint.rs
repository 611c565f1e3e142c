//! Weights from Hugging Face safetensors files: one `model.safetensors`, or shards listed
//! by `model.safetensors.index.json`. From a folder natively, or from byte buffers (the
//! browser). Every error names the file, and the tensor where there is one.

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;

use super::EngineError;

/// One tensor, converted to f32 on load.
pub struct TensorData {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// All tensors of a checkpoint by name, with the file each came from.
pub struct Checkpoint {
    tensors: HashMap<String, (String, TensorData)>,
    /// How the files were named, for "missing tensor" errors.
    source: String,
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
        let ckpt_err = |reason: String| EngineError::Checkpoint {
            file: file.to_string(),
            reason,
        };
        let st = SafeTensors::deserialize(bytes).map_err(|e| {
            ckpt_err(if looks_like_pickle(bytes) {
                "this is a PyTorch pickle file, not safetensors; pickle checkpoints cannot be loaded \
                 safely — convert it to model.safetensors"
                    .to_string()
            } else {
                format!("not a valid safetensors file ({e})")
            })
        })?;
        for (name, view) in st.tensors() {
            let t_err = |reason: String| EngineError::Tensor {
                file: file.to_string(),
                tensor: name.clone(),
                reason,
            };
            let raw = view.data();
            let data: Vec<f32> = match view.dtype() {
                Dtype::F32 => raw
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                Dtype::F16 => raw
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                Dtype::BF16 => raw
                    .chunks_exact(2)
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                // Integer buffers (e.g. BERT's `position_ids`) are not weights.
                Dtype::I64 | Dtype::I32 | Dtype::U8 | Dtype::BOOL => continue,
                other => {
                    return Err(t_err(format!(
                        "dtype {other:?} is not supported (F32, F16, BF16)"
                    )))
                }
            };
            let shape = view.shape().to_vec();
            self.tensors
                .insert(name.clone(), (file.to_string(), TensorData { shape, data }));
        }
        Ok(())
    }

    /// From named file contents, as a folder or a file picker gives them: either one
    /// `*.safetensors`, or an index and all its shards.
    pub fn from_files(files: &[(String, Vec<u8>)]) -> Result<Self, EngineError> {
        let base = |n: &str| n.rsplit(['/', '\\']).next().unwrap_or(n).to_string();
        if let Some((index_name, index_bytes)) =
            files.iter().find(|(n, _)| n.ends_with(".safetensors.index.json"))
        {
            let index: ShardIndex =
                serde_json::from_slice(index_bytes).map_err(|e| EngineError::Checkpoint {
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
                ckpt.add_safetensors(name, bytes)?;
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
                ckpt.add_safetensors(name, bytes)?;
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

    /// Removes and returns a tensor, checking its shape.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<TensorData, EngineError> {
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

/// PyTorch's `torch.save` writes a zip (`PK\x03\x04`) or a raw pickle (`\x80` + protocol).
fn looks_like_pickle(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || matches!(bytes, [0x80, 2..=5, ..])
}
