//! The engine: everything between model files and predictions. No web dependencies.
//!
//! files → [`config`] + [`checkpoint`] + [`tokenize`] / `image` → [`models`] (embeddings and
//! heads) around the shared [`encoder`], on a [`backend`] → [`model::Prediction`].
//! Learning: CSV → [`dataset`] (or images in classes → [`image_dataset`]) → embeddings → [`finetune`] (the loop) over [`train`] (the
//! head and its AdamW step).

pub mod backend;
pub mod checkpoint;
pub mod config;
pub mod dataset;
pub mod encoder;
pub mod error;
pub mod explain;
pub mod finetune;
pub mod image;
pub mod image_dataset;
pub mod model;
pub mod models;
pub mod pipeline;
mod rng;
pub mod tokenize;
pub mod train;

pub use error::EngineError;
