//! Work on a loaded model, written once for every backend; [`super::Service::run`] picks the
//! backend and moves to the CPU if the GPU fails.

use std::cell::Cell;

use super::Ctx;
use crate::engine::backend::TrainOps;
use crate::engine::encoder::Want;
use crate::engine::finetune::{train_head_with, EpochReport, Metrics, TrainConfig};
use crate::engine::image::preprocess_bytes;
use crate::engine::pipeline::Pipeline;
use crate::engine::train::HostTensor;
use crate::engine::EngineError;
use crate::protocol::{ImageResult, Progress, TextResult};

pub(super) trait Job {
    type Output;
    async fn run<B: TrainOps>(&self, p: &Pipeline<B>, be: &B) -> Result<Self::Output, EngineError>;
}

pub(super) struct ClassifyText {
    pub texts: Vec<String>,
    pub want: Want,
}

impl Job for ClassifyText {
    /// Each text's result (label and probabilities empty for an encoder without a
    /// classifier) and its embedding, for a trained head.
    type Output = Vec<(TextResult, Vec<f32>)>;

    async fn run<B: TrainOps>(&self, p: &Pipeline<B>, be: &B) -> Result<Self::Output, EngineError> {
        let tok = p.tokenizer()?;
        let refs: Vec<&str> = self.texts.iter().map(String::as_str).collect();
        let preds = p.run_texts_async(be, &refs, self.want).await?;
        let labels = p.model.config.labels.clone();
        self.texts
            .iter()
            .zip(preds)
            .map(|(text, r)| {
                let pr = r.prediction;
                let result = TextResult {
                    text: text.clone(),
                    tokens: tok.encode(text)?,
                    label: pr.label.unwrap_or_default(),
                    labels: if pr.probs.is_some() {
                        labels.clone()
                    } else {
                        Vec::new()
                    },
                    probs: pr.probs.unwrap_or_default(),
                    attentions: pr.attentions,
                    head: None,
                };
                Ok((result, pr.embedding))
            })
            .collect()
    }
}

pub(super) struct ClassifyImages {
    pub images: Vec<(String, Vec<u8>)>,
    pub want: Want,
}

impl Job for ClassifyImages {
    /// Each image's result and its `[CLS]` embedding (empty for a file that is not an
    /// image), for a trained head.
    type Output = Vec<(ImageResult, Vec<f32>)>;

    /// One image at a time, so that a file that is not an image gets its own message and
    /// the others their answers.
    async fn run<B: TrainOps>(&self, p: &Pipeline<B>, be: &B) -> Result<Self::Output, EngineError> {
        if !p.model.config.architecture.is_vision() {
            return Err(EngineError::Input(
                "the loaded model takes text; load an image model (ViT) first".into(),
            ));
        }
        let labels = p.model.config.labels.clone();
        let mut out = Vec::with_capacity(self.images.len());
        for image in &self.images {
            let result = match p
                .run_images_async(be, std::slice::from_ref(image), self.want)
                .await
            {
                Ok(mut preds) => {
                    let pr = preds.remove(0);
                    let result = ImageResult {
                        name: image.0.clone(),
                        label: pr.label.unwrap_or_default(),
                        labels: if pr.probs.is_some() {
                            labels.clone()
                        } else {
                            Vec::new()
                        },
                        probs: pr.probs.unwrap_or_default(),
                        attentions: pr.attentions,
                        error: None,
                        head: None,
                    };
                    (result, pr.cls)
                }
                Err(e @ EngineError::Image { .. }) => {
                    let result = ImageResult {
                        name: image.0.clone(),
                        label: String::new(),
                        labels: Vec::new(),
                        probs: Vec::new(),
                        attentions: None,
                        error: Some(e.to_string()),
                        head: None,
                    };
                    (result, Vec::new())
                }
                Err(e) => return Err(e),
            };
            out.push(result);
        }
        Ok(out)
    }
}

/// Mean-pooled embeddings of many texts, in batches, with progress; the browser gets a
/// chance to deliver a cancel between batches.
pub(super) struct EmbedTexts<'a> {
    pub texts: &'a [String],
    pub ctx: &'a Ctx<'a>,
}

const EMBED_BATCH: usize = 16;

impl Job for EmbedTexts<'_> {
    type Output = Vec<Vec<f32>>;

    async fn run<B: TrainOps>(&self, p: &Pipeline<B>, be: &B) -> Result<Self::Output, EngineError> {
        let total = self.texts.len() as u64;
        let mut out = Vec::with_capacity(self.texts.len());
        (self.ctx.progress)(Progress::stage("embedding", 0, total));
        for chunk in self.texts.chunks(EMBED_BATCH) {
            if (self.ctx.cancelled)() {
                return Err(EngineError::Input("cancelled".into()));
            }
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let preds = p.run_texts_async(be, &refs, Want::default()).await?;
            out.extend(preds.into_iter().map(|t| t.prediction.embedding));
            (self.ctx.progress)(Progress::stage("embedding", out.len() as u64, total));
            (self.ctx.pause)().await;
        }
        Ok(out)
    }
}

/// The `[CLS]` embeddings of many images (after the final LayerNorm: what a ViT's own
/// classifier reads), in batches, with progress; a file that does not decode gets its
/// message instead, and the others go on.
pub(super) struct EmbedImages<'a> {
    pub images: &'a [(String, Vec<u8>)],
    pub ctx: &'a Ctx<'a>,
}

impl Job for EmbedImages<'_> {
    type Output = Vec<Result<Vec<f32>, String>>;

    async fn run<B: TrainOps>(&self, p: &Pipeline<B>, be: &B) -> Result<Self::Output, EngineError> {
        let pre = match (&p.preprocessor, p.model.config.architecture.is_vision()) {
            (Some(pre), true) => pre,
            _ => {
                return Err(EngineError::Input(
                    "the loaded model takes text; load an image model (ViT) to train on images".into(),
                ))
            }
        };
        let total = self.images.len() as u64;
        let mut out: Vec<Result<Vec<f32>, String>> = Vec::with_capacity(self.images.len());
        (self.ctx.progress)(Progress::stage("embedding", 0, total));
        for chunk in self.images.chunks(EMBED_BATCH) {
            if (self.ctx.cancelled)() {
                return Err(EngineError::Input("cancelled".into()));
            }
            let mut pixels = Vec::with_capacity(chunk.len());
            let mut slots = Vec::with_capacity(chunk.len());
            for (name, bytes) in chunk {
                match preprocess_bytes(name, bytes, pre) {
                    Ok(px) => {
                        slots.push(Ok(pixels.len()));
                        pixels.push(px);
                    }
                    Err(e) => slots.push(Err(e.to_string())),
                }
            }
            let preds = p.model.run_images_async(be, &pixels, Want::default()).await?;
            let mut preds = preds.into_iter();
            for slot in slots {
                out.push(slot.map(|_| preds.next().map(|pr| pr.cls).unwrap_or_default()));
            }
            (self.ctx.progress)(Progress::stage("embedding", out.len() as u64, total));
            (self.ctx.pause)().await;
        }
        Ok(out)
    }
}

/// A head trained on the model's backend; the result comes back to the host.
pub(super) struct TrainHead<'a> {
    pub embeddings: &'a [Vec<f32>],
    pub labels: &'a [u32],
    pub names: &'a [String],
    pub config: TrainConfig,
    pub ctx: &'a Ctx<'a>,
}

pub(super) struct TrainedHost {
    pub weights: Vec<HostTensor>,
    pub history: Vec<EpochReport>,
    pub best_epoch: usize,
    pub stopped_early: bool,
    pub cancelled: bool,
    pub metrics: Metrics,
}

impl Job for TrainHead<'_> {
    type Output = TrainedHost;

    async fn run<B: TrainOps>(&self, _p: &Pipeline<B>, be: &B) -> Result<Self::Output, EngineError> {
        let epochs = self.config.epochs as u64;
        let cancelled = Cell::new(false);
        let ctx = self.ctx;
        let on_epoch = |r: &EpochReport| {
            let mut p = Progress::stage("training", r.epoch as u64, epochs);
            p.epoch = Some(r.clone());
            (ctx.progress)(p);
            cancelled.set((ctx.cancelled)());
            !cancelled.get()
        };
        // After every mini-batch the browser may deliver a cancel (the worker's pause yields
        // to its event loop every few milliseconds of work), so Cancel stops within a batch.
        let after_batch = || async {
            (ctx.pause)().await;
            cancelled.set((ctx.cancelled)());
            !cancelled.get()
        };
        let t = train_head_with(
            be,
            self.embeddings,
            self.labels,
            self.names,
            &self.config,
            on_epoch,
            after_batch,
        )
        .await?;
        let cancelled = cancelled.get();
        Ok(TrainedHost {
            weights: t.head.to_host_async(be).await?,
            history: t.history,
            best_epoch: t.best_epoch,
            stopped_early: t.stopped_early,
            cancelled,
            metrics: t.metrics,
        })
    }
}
