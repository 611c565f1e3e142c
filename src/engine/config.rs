//! `config.json` to one typed config per architecture, with the Hugging Face defaults.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::EngineError;

/// What the checkpoint's `architectures` (or `model_type`) says it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    /// BertForSequenceClassification: encoder + pooler + classifier.
    BertClassifier,
    /// BertModel and sentence-transformers encoders (MiniLM): no classifier.
    BertEncoder,
    DistilBertClassifier,
    DistilBertEncoder,
    VitClassifier,
    VitEncoder,
}

impl Architecture {
    pub fn is_vision(self) -> bool {
        matches!(self, Self::VitClassifier | Self::VitEncoder)
    }
    pub fn has_classifier(self) -> bool {
        matches!(
            self,
            Self::BertClassifier | Self::DistilBertClassifier | Self::VitClassifier
        )
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    #[serde(default = "d768")]
    pub hidden_size: usize,
    #[serde(default = "d12")]
    pub num_hidden_layers: usize,
    #[serde(default = "d12")]
    pub num_attention_heads: usize,
    #[serde(default = "d3072")]
    pub intermediate_size: usize,
    #[serde(default = "gelu")]
    pub hidden_act: String,
    #[serde(default = "d512")]
    pub max_position_embeddings: usize,
    #[serde(default = "d2")]
    pub type_vocab_size: usize,
    #[serde(default = "eps12")]
    pub layer_norm_eps: f64,
    #[serde(default = "absolute")]
    pub position_embedding_type: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct DistilBertConfig {
    pub vocab_size: usize,
    #[serde(default = "d768")]
    pub dim: usize,
    #[serde(default = "d6")]
    pub n_layers: usize,
    #[serde(default = "d12")]
    pub n_heads: usize,
    #[serde(default = "d3072")]
    pub hidden_dim: usize,
    #[serde(default = "gelu")]
    pub activation: String,
    #[serde(default = "d512")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub sinusoidal_pos_embds: bool,
}

#[derive(Clone, Debug, Deserialize)]
pub struct VitConfig {
    #[serde(default = "d768")]
    pub hidden_size: usize,
    #[serde(default = "d12")]
    pub num_hidden_layers: usize,
    #[serde(default = "d12")]
    pub num_attention_heads: usize,
    #[serde(default = "d3072")]
    pub intermediate_size: usize,
    #[serde(default = "gelu")]
    pub hidden_act: String,
    #[serde(default = "d224")]
    pub image_size: usize,
    #[serde(default = "d16")]
    pub patch_size: usize,
    #[serde(default = "d3")]
    pub num_channels: usize,
    #[serde(default = "eps12")]
    pub layer_norm_eps: f64,
}

/// A parsed `config.json`.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub kind: ConfigKind,
    /// Class names by index, from `id2label` (classifiers only).
    pub labels: Vec<String>,
}

#[derive(Clone, Debug)]
pub enum ConfigKind {
    Bert(BertConfig),
    DistilBert(DistilBertConfig),
    Vit(VitConfig),
}

impl ModelConfig {
    pub fn from_json(file: &str, bytes: &[u8]) -> Result<Self, EngineError> {
        let bad = |reason: String| EngineError::Config {
            file: file.to_string(),
            reason,
        };
        let value: Value = serde_json::from_slice(bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
        let arch_name = value
            .get("architectures")
            .and_then(|a| a.get(0))
            .and_then(Value::as_str)
            .map(str::to_string);
        let model_type = value.get("model_type").and_then(Value::as_str).unwrap_or("");
        let architecture = match (arch_name.as_deref(), model_type) {
            (Some("BertForSequenceClassification"), _) => Architecture::BertClassifier,
            (Some("BertModel"), _) | (None, "bert") => Architecture::BertEncoder,
            (Some("DistilBertForSequenceClassification"), _) => Architecture::DistilBertClassifier,
            (Some("DistilBertModel"), _) | (None, "distilbert") => Architecture::DistilBertEncoder,
            (Some("ViTForImageClassification"), _) => Architecture::VitClassifier,
            (Some("ViTModel"), _) | (None, "vit") => Architecture::VitEncoder,
            (Some(other), _) => {
                return Err(bad(format!(
                    "architecture {other} is not supported (supported: BertForSequenceClassification, \
                     BertModel, DistilBertForSequenceClassification, DistilBertModel, \
                     ViTForImageClassification, ViTModel)"
                )))
            }
            (None, other) => return Err(bad(format!("model_type {other:?} is not supported"))),
        };
        let parse_err = |e: serde_json::Error| bad(e.to_string());
        let kind = match architecture {
            Architecture::BertClassifier | Architecture::BertEncoder => {
                let c: BertConfig = serde_json::from_value(value.clone()).map_err(parse_err)?;
                check_act(&c.hidden_act).map_err(bad)?;
                if c.position_embedding_type != "absolute" {
                    return Err(bad(format!(
                        "position_embedding_type {:?} is not supported (only \"absolute\")",
                        c.position_embedding_type
                    )));
                }
                check_heads(c.hidden_size, c.num_attention_heads).map_err(bad)?;
                ConfigKind::Bert(c)
            }
            Architecture::DistilBertClassifier | Architecture::DistilBertEncoder => {
                let c: DistilBertConfig = serde_json::from_value(value.clone()).map_err(parse_err)?;
                check_act(&c.activation).map_err(bad)?;
                check_heads(c.dim, c.n_heads).map_err(bad)?;
                ConfigKind::DistilBert(c)
            }
            Architecture::VitClassifier | Architecture::VitEncoder => {
                let c: VitConfig = serde_json::from_value(value.clone()).map_err(parse_err)?;
                check_act(&c.hidden_act).map_err(bad)?;
                check_heads(c.hidden_size, c.num_attention_heads).map_err(bad)?;
                if c.patch_size == 0 || !c.image_size.is_multiple_of(c.patch_size) {
                    return Err(bad(format!(
                        "image_size {} is not a multiple of patch_size {}",
                        c.image_size, c.patch_size
                    )));
                }
                ConfigKind::Vit(c)
            }
        };
        let labels = if architecture.has_classifier() {
            labels(&value).map_err(bad)?
        } else {
            Vec::new()
        };
        Ok(Self {
            architecture,
            kind,
            labels,
        })
    }

    pub fn hidden_size(&self) -> usize {
        match &self.kind {
            ConfigKind::Bert(c) => c.hidden_size,
            ConfigKind::DistilBert(c) => c.dim,
            ConfigKind::Vit(c) => c.hidden_size,
        }
    }

    pub fn num_layers(&self) -> usize {
        match &self.kind {
            ConfigKind::Bert(c) => c.num_hidden_layers,
            ConfigKind::DistilBert(c) => c.n_layers,
            ConfigKind::Vit(c) => c.num_hidden_layers,
        }
    }

    /// The longest token sequence the position embeddings cover (text models).
    pub fn max_positions(&self) -> Option<usize> {
        match &self.kind {
            ConfigKind::Bert(c) => Some(c.max_position_embeddings),
            ConfigKind::DistilBert(c) => Some(c.max_position_embeddings),
            ConfigKind::Vit(_) => None,
        }
    }
}

fn check_act(act: &str) -> Result<(), String> {
    match act {
        "gelu" => Ok(()),
        other => Err(format!(
            "activation {other:?} is not supported (only \"gelu\", the erf form)"
        )),
    }
}

fn check_heads(hidden: usize, heads: usize) -> Result<(), String> {
    if heads == 0 || !hidden.is_multiple_of(heads) {
        return Err(format!(
            "hidden size {hidden} is not divisible by {heads} attention heads"
        ));
    }
    Ok(())
}

/// `id2label` as a dense list; `num_labels` alone gives LABEL_0, LABEL_1, …
fn labels(value: &Value) -> Result<Vec<String>, String> {
    if let Some(map) = value.get("id2label").and_then(Value::as_object) {
        let mut by_index = BTreeMap::new();
        for (k, v) in map {
            let i: usize = k
                .parse()
                .map_err(|_| format!("id2label key {k:?} is not an index"))?;
            let name = v
                .as_str()
                .ok_or_else(|| format!("id2label[{k}] is not a string"))?;
            by_index.insert(i, name.to_string());
        }
        let n = by_index.len();
        if by_index.keys().copied().ne(0..n) {
            return Err("id2label indices are not 0..n".to_string());
        }
        return Ok(by_index.into_values().collect());
    }
    let n = value.get("num_labels").and_then(Value::as_u64).unwrap_or(2) as usize;
    Ok((0..n).map(|i| format!("LABEL_{i}")).collect())
}

fn d2() -> usize {
    2
}
fn d3() -> usize {
    3
}
fn d6() -> usize {
    6
}
fn d12() -> usize {
    12
}
fn d16() -> usize {
    16
}
fn d224() -> usize {
    224
}
fn d512() -> usize {
    512
}
fn d768() -> usize {
    768
}
fn d3072() -> usize {
    3072
}
fn eps12() -> f64 {
    1e-12
}
fn gelu() -> String {
    "gelu".to_string()
}
fn absolute() -> String {
    "absolute".to_string()
}
