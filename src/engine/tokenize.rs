//! Text to token ids with the Hugging Face `tokenizers` crate, so ids equal Python's.

use serde::{Deserialize, Serialize};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use super::EngineError;

/// One token of an encoded text, with the byte span of the input it came from
/// (empty for special tokens such as `[CLS]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Token {
    pub id: u32,
    pub text: String,
    pub start: usize,
    pub end: usize,
    pub special: bool,
}

/// A `tokenizer.json`, configured to encode inputs as given.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
}

impl TextTokenizer {
    /// Parses a `tokenizer.json`. `file` names it in errors. The padding and truncation
    /// presets some files carry are dropped: inputs are encoded as given, and truncated
    /// only to `max_len` (the model's maximum), when one is known.
    pub fn from_bytes(file: &str, bytes: &[u8], max_len: Option<usize>) -> Result<Self, EngineError> {
        let mut inner = Tokenizer::from_bytes(bytes).map_err(|e| EngineError::Tokenizer {
            file: file.to_string(),
            reason: e.to_string(),
        })?;
        inner.with_padding(None);
        let truncation = max_len.map(|max_length| TruncationParams {
            max_length,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
            direction: TruncationDirection::Right,
        });
        inner
            .with_truncation(truncation)
            .map_err(|e| EngineError::Tokenizer {
                file: file.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Self { inner })
    }

    pub fn from_file(path: &std::path::Path, max_len: Option<usize>) -> Result<Self, EngineError> {
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| EngineError::Io {
            file: file.clone(),
            source,
        })?;
        Self::from_bytes(&file, &bytes, max_len)
    }

    /// Size of the vocabulary including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Encodes one text with the model's special tokens (`[CLS] … [SEP]` for BERT).
    pub fn encode(&self, text: &str) -> Result<Vec<Token>, EngineError> {
        let enc = self
            .inner
            .encode(text, true)
            .map_err(|e| EngineError::Encode(e.to_string()))?;
        let tokens = enc
            .get_ids()
            .iter()
            .zip(enc.get_tokens())
            .zip(enc.get_offsets())
            .zip(enc.get_special_tokens_mask())
            .map(|(((&id, text), &(start, end)), &special)| Token {
                id,
                text: text.clone(),
                start,
                end,
                special: special == 1,
            })
            .collect();
        Ok(tokens)
    }

    /// Token ids only.
    pub fn encode_ids(&self, text: &str) -> Result<Vec<u32>, EngineError> {
        Ok(self.encode(text)?.into_iter().map(|t| t.id).collect())
    }
}
