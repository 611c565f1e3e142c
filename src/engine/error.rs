use thiserror::Error;

/// Every failure the engine reports. Messages name the file (and tensor, where there is
/// one) so the UI can show them to the user as they are.
#[derive(Debug, Error)]
pub enum EngineError {
    #[error("{file}: not a valid tokenizer ({reason})")]
    Tokenizer { file: String, reason: String },
    #[error("tokenizing failed: {0}")]
    Encode(String),
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
}
