//! A model together with what reads its inputs (tokenizer or image preprocessor), loaded
//! from a checkpoint folder or from named file contents (what the browser has).

use std::path::Path;

use serde::Serialize;

use super::backend::{Backend, Result};
use super::checkpoint::{read_model_dir, Bytes, Checkpoint};
use super::config::{ConfigKind, ModelConfig};
use super::encoder::Want;
use super::image::{self, PreprocessorConfig};
use super::model::{Model, Prediction};
use super::tokenize::TextTokenizer;
use super::EngineError;

/// How many inputs go through the encoder at once.
const BATCH: usize = 16;

pub struct Pipeline<B: Backend> {
    pub model: Model<B>,
    pub tokenizer: Option<TextTokenizer>,
    pub preprocessor: Option<PreprocessorConfig>,
}

/// A text's prediction with the ids it was tokenized to.
#[derive(Clone, Debug, Serialize)]
pub struct TextPrediction {
    pub token_ids: Vec<u32>,
    #[serde(flatten)]
    pub prediction: Prediction,
}

fn base(name: &str) -> &str {
    name.rsplit(['/', '\\']).next().unwrap_or(name)
}

impl<B: Backend> Pipeline<B> {
    /// `files`: (name or path, contents). Needs config.json and the weights; text models
    /// need tokenizer.json; image models use preprocessor_config.json when present.
    pub fn from_files(be: &B, files: &[(String, Vec<u8>)]) -> Result<Self> {
        let sources: Vec<(String, &dyn Bytes)> =
            files.iter().map(|(n, b)| (n.clone(), b as &dyn Bytes)).collect();
        Self::from_sources(be, &sources)
    }

    /// [`Pipeline::from_files`] with contents read as needed: the small files (config,
    /// tokenizer, preprocessor) are copied whole, the weights tensor by tensor
    /// ([`Checkpoint::from_sources`]).
    pub fn from_sources(be: &B, files: &[(String, &dyn Bytes)]) -> Result<Self> {
        let find = |n: &str| {
            files
                .iter()
                .find(|(f, _)| base(f) == n)
                .map(|(f, b)| (f, b.to_vec()))
        };
        let (cfg_name, cfg_bytes) = find("config.json").ok_or_else(|| EngineError::Config {
            file: "config.json".into(),
            reason: "missing: a model needs its config.json".into(),
        })?;
        let config = ModelConfig::from_json(cfg_name, &cfg_bytes)?;
        let (tokenizer, preprocessor) = if config.architecture.is_vision() {
            let ConfigKind::Vit(vit) = &config.kind else {
                unreachable!("vision configs are ViT")
            };
            let pre = match find("preprocessor_config.json") {
                Some((name, bytes)) => PreprocessorConfig::from_json(name, &bytes)?,
                // ViTImageProcessor's defaults, at the model's own resolution.
                None => PreprocessorConfig::from_json(
                    "preprocessor_config.json (defaults)",
                    format!(r#"{{"size": {{"height": {0}, "width": {0}}}}}"#, vit.image_size).as_bytes(),
                )?,
            };
            if (pre.size.height, pre.size.width) != (vit.image_size as u32, vit.image_size as u32) {
                return Err(EngineError::Config {
                    file: "preprocessor_config.json".into(),
                    reason: format!(
                        "resizes to {}×{} but the model takes {1}×{1}",
                        pre.size.width, vit.image_size
                    ),
                });
            }
            (None, Some(pre))
        } else {
            let (name, bytes) = find("tokenizer.json").ok_or_else(|| EngineError::Tokenizer {
                file: "tokenizer.json".into(),
                reason: "missing: a text model needs its tokenizer.json".into(),
            })?;
            (
                Some(TextTokenizer::from_bytes(name, &bytes, config.max_positions())?),
                None,
            )
        };
        let checkpoint = Checkpoint::from_sources(files)?;
        let model = Model::load(be, config, checkpoint)?;
        Ok(Self {
            model,
            tokenizer,
            preprocessor,
        })
    }

    pub fn from_dir(be: &B, dir: &Path) -> Result<Self> {
        Self::from_files(be, &read_model_dir(dir)?)
    }

    pub fn tokenizer(&self) -> Result<&TextTokenizer> {
        self.tokenizer
            .as_ref()
            .ok_or_else(|| EngineError::Input("this is an image model; it takes images, not text".into()))
    }

    /// Tokenizes and runs texts, in batches.
    pub fn run_texts(&self, be: &B, texts: &[&str], want: Want) -> Result<Vec<TextPrediction>> {
        let ids = self.token_ids(texts)?;
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH) {
            let preds = self.model.run_text(be, chunk, want)?;
            out.extend(with_ids(chunk, preds));
        }
        Ok(out)
    }

    /// [`Pipeline::run_texts`] with read-backs that do not block (the browser's WebGPU).
    pub async fn run_texts_async(&self, be: &B, texts: &[&str], want: Want) -> Result<Vec<TextPrediction>> {
        let ids = self.token_ids(texts)?;
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH) {
            let preds = self.model.run_text_async(be, chunk, want).await?;
            out.extend(with_ids(chunk, preds));
        }
        Ok(out)
    }

    fn token_ids(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        let tok = self.tokenizer()?;
        texts.iter().map(|t| tok.encode_ids(t)).collect()
    }

    /// Decodes, preprocesses and runs images given as (name, file contents).
    pub fn run_images(&self, be: &B, images: &[(String, Vec<u8>)], want: Want) -> Result<Vec<Prediction>> {
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(BATCH) {
            out.extend(self.model.run_images(be, &self.pixels(chunk)?, want)?);
        }
        Ok(out)
    }

    /// [`Pipeline::run_images`] with read-backs that do not block.
    pub async fn run_images_async(
        &self,
        be: &B,
        images: &[(String, Vec<u8>)],
        want: Want,
    ) -> Result<Vec<Prediction>> {
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(BATCH) {
            out.extend(
                self.model
                    .run_images_async(be, &self.pixels(chunk)?, want)
                    .await?,
            );
        }
        Ok(out)
    }

    fn pixels(&self, images: &[(String, Vec<u8>)]) -> Result<Vec<Vec<f32>>> {
        let pre = self
            .preprocessor
            .as_ref()
            .ok_or_else(|| EngineError::Input("this is a text model; it takes text, not images".into()))?;
        images
            .iter()
            .map(|(name, bytes)| image::preprocess_bytes(name, bytes, pre))
            .collect()
    }

    /// Runs one tiny input so that the backend compiles and caches every kernel while the
    /// model loads, not on the user's first click.
    pub async fn warm_up(&self, be: &B) -> Result<()> {
        let want = Want {
            attentions: true,
            hidden_states: false,
        };
        if let ConfigKind::Vit(vit) = &self.model.config.kind {
            let pixels = vec![0.0; vit.num_channels * vit.image_size * vit.image_size];
            self.model.run_images_async(be, &[pixels], want).await?;
        } else {
            self.model.run_text_async(be, &[vec![0, 0]], want).await?;
        }
        Ok(())
    }
}

fn with_ids(ids: &[Vec<u32>], preds: Vec<Prediction>) -> impl Iterator<Item = TextPrediction> + '_ {
    ids.iter()
        .cloned()
        .zip(preds)
        .map(|(token_ids, prediction)| TextPrediction {
            token_ids,
            prediction,
        })
}
