//! One file per model family: its embeddings, its checkpoint names and its head. The
//! encoder layers themselves are shared (`engine::encoder`).

pub mod bert;
pub mod distilbert;
pub mod vit;

use super::checkpoint::Checkpoint;

/// Checkpoints of a `...ForSequenceClassification` keep the encoder under a prefix
/// (`bert.`, `distilbert.`, `vit.`); bare encoders (BertModel, MiniLM) do not.
pub(crate) fn prefix(ckpt: &Checkpoint, name: &str) -> String {
    let p = format!("{name}.");
    if ckpt.has_prefix(&p) {
        p
    } else {
        String::new()
    }
}

/// What a model's head gives for the `[CLS]` rows.
pub struct HeadOutput<T> {
    /// The tanh pooler's output, where the model has a pooler.
    pub pooled: Option<T>,
    /// Classifier logits, where the model has a classifier.
    pub logits: Option<T>,
}
