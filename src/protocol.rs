//! Messages between the page and the worker that owns the engine.
//!
//! The page sends [`ToWorker`], the worker answers each with exactly one final
//! [`FromWorker`] carrying the same `id`, after any number of [`Response::Progress`] with
//! that id. Id 0 is the worker speaking on its own: `Pong` when it is ready, `Backend` when
//! the backend changed (a lost GPU). Both travel as JSON strings through `postMessage`, which keeps
//! them readable in the devtools and identical in native tests. Attention maps are the one
//! bulky part: they travel as base64 of their f32 bytes ([`attention_maps`]), not as JSON
//! numbers.

use serde::{Deserialize, Serialize};

use crate::engine::finetune::{EpochReport, Metrics, TrainConfig};
use crate::engine::tokenize::Token;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToWorker {
    pub id: u64,
    pub request: Request,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FromWorker {
    pub id: u64,
    pub response: Response,
}

/// Which compute backend the user asked for (`?backend=` in the URL).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    #[default]
    Auto,
    Cpu,
    Webgpu,
}

impl BackendChoice {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "auto" => Some(Self::Auto),
            "cpu" => Some(Self::Cpu),
            "webgpu" => Some(Self::Webgpu),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Liveness check; the worker answers with its version.
    Ping,
    /// Finds the compute backend: a WebGPU adapter, or the CPU with the reason why.
    ProbeBackend { choice: BackendChoice },
    /// Installs a tokenizer from the text of a `tokenizer.json`.
    LoadTokenizer { source: String, json: String },
    /// Tokenizes text with the installed tokenizer.
    Tokenize { text: String },
    /// Loads a model from its files (config.json, *.safetensors, tokenizer.json, …). The
    /// contents travel beside the message as transferred buffers, in `names` order.
    LoadModel { source: String, names: Vec<String> },
    /// Like `LoadModel`, but the built model is only set aside (answered with
    /// `ModelLoaded`), not put in use: `UseBuiltModel` then installs it, or drops it when the
    /// user cancelled while it was being built, so the model loaded before stays.
    BuildModel { source: String, names: Vec<String> },
    /// Installs the model the last `BuildModel` set aside (`keep`, answered with
    /// `ModelLoaded`) or drops it (answered with `Done`).
    UseBuiltModel { keep: bool },
    /// Classifies each text with the loaded model.
    ClassifyText { texts: Vec<String>, attentions: bool },
    /// Classifies images; their file contents travel beside the message, in `names` order.
    ClassifyImages { names: Vec<String>, attentions: bool },
    /// Reads a dropped CSV (its contents travel as the one buffer): columns, guesses, preview.
    InspectCsv { name: String },
    /// Embeds the inspected CSV's texts with the loaded model (cached per model, file and
    /// column) and trains a head on them; progress per batch and per epoch.
    Train {
        text_col: usize,
        label_col: usize,
        config: TrainConfig,
    },
    /// Stops the running embedding or training; the best head so far is kept. Handled at
    /// once, not queued behind the work it cancels.
    CancelTraining,
    /// The trained head as `head.safetensors` bytes and its JSON.
    ExportHead,
    /// Installs a head exported before (its file travels as the one buffer).
    ImportHead { name: String },
    /// Destroys the GPU device as a driver reset would, to show (and test) that the
    /// work moves to the CPU with nothing lost. Offered on the page with `?debug`.
    SimulateGpuLoss,
    /// Embeds images sorted into classes with the loaded ViT (its `[CLS]` representation,
    /// what its own classifier reads; cached per model and images) and trains a head on
    /// them. `classes[i]` is the class of `names[i]`; the contents travel beside the message
    /// in that order. A zip holds class folders (files at its top go to its own class).
    TrainImages {
        classes: Vec<String>,
        names: Vec<String>,
        config: TrainConfig,
    },
    /// The trained image head as `head.safetensors` bytes and its JSON (answered with
    /// `HeadFile`).
    ExportImageHead,
    /// Installs an image head exported before (its file travels as the one buffer).
    /// `ImportHead` takes text heads only and `ImportImageHead` image heads only: each refuses
    /// the other kind and says where it goes.
    ImportImageHead { name: String },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    Pong {
        version: String,
        /// The CPU path this build runs ([`crate::engine::backend::cpu::KERNELS`]): the page
        /// starts one of two worker builds and shows what the worker says it is.
        #[serde(default)]
        kernels: String,
    },
    Backend(BackendInfo),
    TokenizerLoaded {
        source: String,
        vocab_size: usize,
    },
    Tokens {
        tokens: Vec<Token>,
    },
    ModelLoaded(ModelInfo),
    TextResults {
        results: Vec<TextResult>,
    },
    /// The request was carried out and has nothing to return.
    Done,
    ImageResults {
        results: Vec<ImageResult>,
    },
    CsvInfo(CsvInfo),
    Trained(Box<TrainSummary>),
    HeadFile {
        safetensors: Vec<u8>,
        json: String,
    },
    HeadLoaded(HeadInfo),
    /// Long work under way: sent with the request's `id`, any number of times before the
    /// one final answer.
    Progress(Progress),
    /// The request failed; `message` is meant for the user.
    Error {
        message: String,
    },
}

/// What the page shows about a loaded model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub source: String,
    pub architecture: String,
    /// "text" or "image".
    pub modality: String,
    pub labels: Vec<String>,
    pub layers: usize,
    pub heads: usize,
    pub hidden: usize,
    /// The backend the model runs on, e.g. "WebGPU (…)" or "CPU (wasm SIMD)".
    pub backend: String,
    /// The worker's wasm memory once the model is built, in bytes (a wasm memory never
    /// shrinks, so this is also the most loading took); absent natively.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
}

/// How far long work has come: `done` of `total` units of `stage`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub stage: String,
    pub done: u64,
    pub total: u64,
    /// During training: the epoch just finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<EpochReport>,
}

/// A dropped CSV as the page shows it before training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CsvInfo {
    pub name: String,
    pub columns: Vec<String>,
    pub rows: usize,
    pub delimiter: String,
    pub has_header: bool,
    pub text_col: Option<usize>,
    pub label_col: Option<usize>,
    /// The first rows' cells.
    pub preview: Vec<Vec<String>>,
}

/// A finished (or cancelled) training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    pub labels: Vec<String>,
    pub class_counts: Vec<usize>,
    pub skipped_rows: usize,
    pub warnings: Vec<String>,
    pub history: Vec<EpochReport>,
    pub best_epoch: usize,
    pub stopped_early: bool,
    pub cancelled: bool,
    pub metrics: Metrics,
    /// Whether the embeddings came from the cache (same model, file and column).
    pub cached_embeddings: bool,
    /// The head now installed.
    pub head: HeadInfo,
}

/// The installed head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadInfo {
    pub labels: Vec<String>,
    pub encoder: String,
    pub input: usize,
    pub hidden: Option<usize>,
    pub metrics: Option<Metrics>,
}

/// One image's classification, or why it could not be read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageResult {
    pub name: String,
    pub label: String,
    pub labels: Vec<String>,
    pub probs: Vec<f32>,
    /// `[layer][head][query][key]` over the CLS token and the patches, when asked for.
    #[serde(default, with = "attention_maps")]
    pub attentions: Option<Vec<Vec<Vec<Vec<f32>>>>>,
    /// Set (and the rest empty) when this file is not a usable image.
    pub error: Option<String>,
    /// The trained image head's answer, where there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<HeadResult>,
}

/// A trained head's answer for one text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadResult {
    pub label: String,
    pub labels: Vec<String>,
    pub probs: Vec<f32>,
}

impl Progress {
    pub fn stage(stage: &str, done: u64, total: u64) -> Self {
        Self {
            stage: stage.to_string(),
            done,
            total,
            epoch: None,
        }
    }
}

/// One text's classification.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TextResult {
    pub text: String,
    pub tokens: Vec<Token>,
    /// The model's own classifier, or the trained head where the model has none.
    pub label: String,
    /// Class names of `probs`.
    pub labels: Vec<String>,
    pub probs: Vec<f32>,
    /// The trained head's answer, where there is a head and the model has its own classifier.
    pub head: Option<HeadResult>,
    /// `[layer][head][query][key]`, when asked for.
    #[serde(default, with = "attention_maps")]
    pub attentions: Option<Vec<Vec<Vec<Vec<f32>>>>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Webgpu,
    Cpu,
}

/// What the status line shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackendInfo {
    pub kind: BackendKind,
    /// The WebGPU adapter, e.g. "google swiftshader (fallback adapter)".
    pub adapter: Option<String>,
    /// Why the CPU is used, when it is.
    pub reason: Option<String>,
}

impl BackendInfo {
    pub fn label(&self) -> String {
        self.label_with("wasm SIMD")
    }

    /// The label with the CPU path named `cpu` (the page knows which worker build it started).
    pub fn label_with(&self, cpu: &str) -> String {
        match (self.kind, &self.adapter, &self.reason) {
            (BackendKind::Webgpu, Some(a), _) => format!("WebGPU: {a}"),
            (BackendKind::Webgpu, None, _) => "WebGPU".to_string(),
            (BackendKind::Cpu, _, Some(r)) => format!("CPU ({cpu}) — {r}"),
            (BackendKind::Cpu, _, None) => format!("CPU ({cpu})"),
        }
    }
}

impl ToWorker {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("protocol messages always serialize")
    }
    pub fn from_json(s: &str) -> Result<Self, String> {
        serde_json::from_str(s).map_err(|e| format!("malformed request to the worker: {e}"))
    }
}

impl FromWorker {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("protocol messages always serialize")
    }
    pub fn from_json(s: &str) -> Result<Self, String> {
        serde_json::from_str(s).map_err(|e| format!("malformed answer from the worker: {e}"))
    }
}

/// Attention maps on the wire: `{"shape": [layers, heads, queries, keys], "f32le": base64}`.
/// As JSON numbers, 12 layers × 12 heads × 128 tokens are ~28 MB of text whose parsing took
/// the page 250-450 ms; as base64 they are 12.6 MB that decode in a few ms, bit-exact.
pub mod attention_maps {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use serde::de::Error as _;
    use serde::ser::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    type Maps = Vec<Vec<Vec<Vec<f32>>>>;

    #[derive(Serialize, Deserialize)]
    struct Packed {
        shape: [usize; 4],
        f32le: String,
    }

    pub fn serialize<S: Serializer>(maps: &Option<Maps>, s: S) -> Result<S::Ok, S::Error> {
        let Some(maps) = maps else {
            return s.serialize_none();
        };
        let layers = maps.len();
        let heads = maps.first().map_or(0, Vec::len);
        let queries = maps.first().and_then(|l| l.first()).map_or(0, Vec::len);
        let keys = maps
            .first()
            .and_then(|l| l.first())
            .and_then(|h| h.first())
            .map_or(0, Vec::len);
        let mut bytes = Vec::with_capacity(layers * heads * queries * keys * 4);
        for (l, layer) in maps.iter().enumerate() {
            for (h, head) in layer.iter().enumerate() {
                if layer.len() != heads || head.len() != queries || head.iter().any(|r| r.len() != keys) {
                    return Err(S::Error::custom(format!(
                        "attention maps are not rectangular (layer {l}, head {h})"
                    )));
                }
                for row in head {
                    bytes.extend(row.iter().flat_map(|x| x.to_le_bytes()));
                }
            }
        }
        Some(Packed {
            shape: [layers, heads, queries, keys],
            f32le: STANDARD.encode(bytes),
        })
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Maps>, D::Error> {
        let Some(Packed { shape, f32le }) = Option::<Packed>::deserialize(d)? else {
            return Ok(None);
        };
        let bytes = STANDARD.decode(f32le).map_err(D::Error::custom)?;
        let [layers, heads, queries, keys] = shape;
        let n = layers
            .checked_mul(heads)
            .and_then(|x| x.checked_mul(queries))
            .and_then(|x| x.checked_mul(keys))
            .and_then(|x| x.checked_mul(4));
        if n != Some(bytes.len()) {
            return Err(D::Error::custom(format!(
                "attention maps of shape {shape:?} need {n:?} bytes, got {}",
                bytes.len()
            )));
        }
        let mut values = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let mut next = |len: usize| -> Vec<f32> { values.by_ref().take(len).collect() };
        Ok(Some(
            (0..layers)
                .map(|_| {
                    (0..heads)
                        .map(|_| (0..queries).map(|_| next(keys)).collect())
                        .collect()
                })
                .collect(),
        ))
    }
}
