//! Messages between the page and the worker that owns the engine.
//!
//! The page sends [`ToWorker`], the worker answers each with exactly one final
//! [`FromWorker`] carrying the same `id`, after any number of [`Response::Progress`] with
//! that id. Id 0 is the worker speaking on its own: `Pong` when it is ready, `Backend` when
//! the backend changed (a lost GPU). Both travel as JSON strings through `postMessage`, which keeps
//! them readable in the devtools and identical in native tests.

use serde::{Deserialize, Serialize};

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
    /// Classifies each text with the loaded model.
    ClassifyText { texts: Vec<String>, attentions: bool },
    /// Destroys the GPU device as a driver reset would, to show (and test) that the
    /// work moves to the CPU with nothing lost. Offered on the page with `?debug`.
    SimulateGpuLoss,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    Pong {
        version: String,
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
}

/// How far long work has come: `done` of `total` units of `stage`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub stage: String,
    pub done: u64,
    pub total: u64,
}

impl Progress {
    pub fn stage(stage: &str, done: u64, total: u64) -> Self {
        Self {
            stage: stage.to_string(),
            done,
            total,
        }
    }
}

/// One text's classification.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TextResult {
    pub text: String,
    pub tokens: Vec<Token>,
    pub label: String,
    pub probs: Vec<f32>,
    /// `[layer][head][query][key]`, when asked for.
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
        match (self.kind, &self.adapter, &self.reason) {
            (BackendKind::Webgpu, Some(a), _) => format!("WebGPU: {a}"),
            (BackendKind::Webgpu, None, _) => "WebGPU".to_string(),
            (BackendKind::Cpu, _, Some(r)) => format!("CPU (wasm SIMD) — {r}"),
            (BackendKind::Cpu, _, None) => "CPU (wasm SIMD)".to_string(),
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
