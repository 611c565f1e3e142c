//! The worker's state and request handling, free of web APIs so it runs in native tests.
//!
//! Requests that need the browser (probing WebGPU) are answered by the worker shell itself;
//! everything else comes here.

use crate::engine::backend::cpu::CpuBackend;
use crate::engine::encoder::Want;
use crate::engine::pipeline::Pipeline;
use crate::engine::tokenize::TextTokenizer;
use crate::protocol::{ModelInfo, Request, Response, TextResult};

#[derive(Default)]
pub struct Service {
    tokenizer: Option<TextTokenizer>,
    backend: CpuBackend,
    model: Option<Pipeline<CpuBackend>>,
}

impl Service {
    pub fn new() -> Self {
        Self::default()
    }

    /// `files` are the buffers that came with the request (only `LoadModel` has any).
    pub fn handle_with_files(&mut self, request: Request, files: Vec<Vec<u8>>) -> Response {
        match request {
            Request::LoadModel { source, names } => self.load_model(source, names, files),
            other => self.handle(other),
        }
    }

    fn load_model(&mut self, source: String, names: Vec<String>, files: Vec<Vec<u8>>) -> Response {
        if names.len() != files.len() {
            return Response::Error {
                message: format!(
                    "{} file names but {} file contents arrived",
                    names.len(),
                    files.len()
                ),
            };
        }
        let named: Vec<(String, Vec<u8>)> = names.into_iter().zip(files).collect();
        match Pipeline::from_files(&self.backend, &named) {
            Ok(p) => {
                let c = &p.model.config;
                let info = ModelInfo {
                    source,
                    architecture: format!("{:?}", c.architecture),
                    modality: if c.architecture.is_vision() {
                        "image"
                    } else {
                        "text"
                    }
                    .to_string(),
                    labels: c.labels.clone(),
                    layers: c.num_layers(),
                    heads: p.model.heads(),
                    hidden: c.hidden_size(),
                };
                // Only a model that loaded replaces the current one: a bad file loses nothing.
                self.model = Some(p);
                Response::ModelLoaded(info)
            }
            Err(e) => Response::Error {
                message: e.to_string(),
            },
        }
    }

    fn classify_text(&self, texts: Vec<String>, attentions: bool) -> Response {
        let Some(p) = &self.model else {
            return Response::Error {
                message: "no model is loaded yet".to_string(),
            };
        };
        if !p.model.config.architecture.has_classifier() {
            return Response::Error {
                message: "this model is an encoder without a classifier; train a head for it first".into(),
            };
        }
        let tok = match p.tokenizer() {
            Ok(t) => t,
            Err(e) => {
                return Response::Error {
                    message: e.to_string(),
                }
            }
        };
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let want = Want {
            attentions,
            hidden_states: false,
        };
        let run = || -> Result<Vec<TextResult>, crate::engine::EngineError> {
            let preds = p.run_texts(&self.backend, &refs, want)?;
            texts
                .iter()
                .zip(preds)
                .map(|(text, r)| {
                    Ok(TextResult {
                        text: text.clone(),
                        tokens: tok.encode(text)?,
                        label: r.prediction.label.unwrap_or_default(),
                        probs: r.prediction.probs.unwrap_or_default(),
                        attentions: r.prediction.attentions,
                    })
                })
                .collect()
        };
        match run() {
            Ok(results) => Response::TextResults { results },
            Err(e) => Response::Error {
                message: e.to_string(),
            },
        }
    }

    pub fn handle(&mut self, request: Request) -> Response {
        match request {
            Request::LoadModel { .. } => Response::Error {
                message: "LoadModel needs its files: use handle_with_files".to_string(),
            },
            Request::ClassifyText { texts, attentions } => self.classify_text(texts, attentions),
            Request::Ping => Response::Pong {
                version: env!("CARGO_PKG_VERSION").to_string(),
            },
            Request::ProbeBackend { .. } => Response::Error {
                message: "backend probing needs the browser's worker".to_string(),
            },
            Request::LoadTokenizer { source, json } => {
                match TextTokenizer::from_bytes(&source, json.as_bytes(), None) {
                    Ok(tok) => {
                        let vocab_size = tok.vocab_size();
                        self.tokenizer = Some(tok);
                        Response::TokenizerLoaded { source, vocab_size }
                    }
                    // The previous tokenizer stays installed: a bad file loses nothing.
                    Err(e) => Response::Error {
                        message: e.to_string(),
                    },
                }
            }
            Request::Tokenize { text } => match &self.tokenizer {
                None => Response::Error {
                    message: "no tokenizer is loaded yet".to_string(),
                },
                Some(tok) => match tok.encode(&text) {
                    Ok(tokens) => Response::Tokens { tokens },
                    Err(e) => Response::Error {
                        message: e.to_string(),
                    },
                },
            },
        }
    }
}
