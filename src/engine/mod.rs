//! The engine: everything between model files and predictions. No web dependencies.

pub mod error;
pub mod tokenize;

pub use error::EngineError;
