//! The worker's state and request handling, free of web APIs so it runs in native tests.
//!
//! Requests that need the browser (probing WebGPU) are answered by the worker shell itself;
//! everything else comes here.

use crate::engine::tokenize::TextTokenizer;
use crate::protocol::{Request, Response};

#[derive(Default)]
pub struct Service {
    tokenizer: Option<TextTokenizer>,
}

impl Service {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn handle(&mut self, request: Request) -> Response {
        match request {
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
