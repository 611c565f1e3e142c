use thiserror::Error;

/// Every failure the engine reports. Messages name the file (and tensor, where there is
/// one) so the UI can show them to the user as they are.
#[derive(Debug, Error)]
pub enum EngineError {
    #[error("{file}: not a valid tokenizer ({reason})")]
    Tokenizer { file: String, reason: String },
    #[error("tokenizing failed: {0}")]
    Encode(String),
    #[error("{file}: {reason}")]
    Config { file: String, reason: String },
    #[error("{file}: {reason}")]
    Checkpoint { file: String, reason: String },
    #[error("{file}: tensor {tensor}: {reason}")]
    Tensor {
        file: String,
        tensor: String,
        reason: String,
    },
    #[error("compute failed: {0}")]
    Compute(String),
    /// The GPU stopped working (device lost, driver reset, GPU error): callers fall back
    /// to the CPU and run again.
    #[error("{0}")]
    DeviceLost(String),
    #[error("{0}")]
    Input(String),
    #[error("{file}: not a usable image ({reason})")]
    Image { file: String, reason: String },
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
}
