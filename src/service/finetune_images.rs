//! Fine-tuning on images in the worker: sort the dropped images into classes, embed them
//! with the loaded ViT (cached), train a head with the same loop as for text, and use it
//! next to the model's own classifier in the image panel.

use super::finetune::{head_info, head_result};
use super::jobs::{EmbedImages, TrainHead};
use super::{error, Ctx, Service};
use crate::engine::backend::cpu::CpuBackend;
use crate::engine::finetune::{
    classify_embeddings, head_from_safetensors, head_to_safetensors, HeadMeta, TrainConfig,
};
use crate::engine::image_dataset::{fingerprint, ClassFile, ImageDataset};
use crate::engine::train::{Head, HostTensor};
use crate::engine::EngineError;
use crate::protocol::{HeadInfo, ImageResult, Response, TrainSummary};

/// How an image head pools: the `[CLS]` token after the final LayerNorm. Text heads say
/// "mean"; the imports tell the two kinds apart by this.
pub const IMAGE_POOLING: &str = "cls";

/// Each image's embedding, or why it could not be read, in the images' order.
pub(super) type Embedded = Vec<Result<Vec<f32>, String>>;

impl Service {
    pub(super) async fn train_images(
        &mut self,
        classes: Vec<String>,
        names: Vec<String>,
        files: Vec<Vec<u8>>,
        config: TrainConfig,
        ctx: &Ctx<'_>,
    ) -> Response {
        match self.train_images_inner(classes, names, files, config, ctx).await {
            Ok(summary) => Response::Trained(Box::new(summary)),
            Err(e) => error(e),
        }
    }

    async fn train_images_inner(
        &mut self,
        classes: Vec<String>,
        names: Vec<String>,
        files: Vec<Vec<u8>>,
        config: TrainConfig,
        ctx: &Ctx<'_>,
    ) -> Result<TrainSummary, EngineError> {
        if classes.len() != names.len() || names.len() != files.len() {
            return Err(EngineError::Input(format!(
                "{} classes, {} image names and {} contents arrived; they must match",
                classes.len(),
                names.len(),
                files.len()
            )));
        }
        let model = self.model.as_ref().ok_or_else(|| {
            EngineError::Input("load an image model (a ViT) first, with \"open local files\"".into())
        })?;
        if model.info.modality != "image" {
            return Err(EngineError::Input(format!(
                "the loaded model ({}) takes text; load an image model (a ViT) to train on images",
                model.info.source
            )));
        }
        let encoder = model.info.source.clone();
        let input = model.info.hidden;
        let arch = model.info.architecture.clone();
        let mut data = ImageDataset::new(
            classes
                .into_iter()
                .zip(names)
                .zip(files)
                .map(|((class, name), bytes)| ClassFile { class, name, bytes })
                .collect(),
        )?;
        let key = format!(
            "{encoder}|{arch}|{}|{:016x}",
            data.images.len(),
            fingerprint(&data.images)
        );
        let cached = matches!(&self.image_embedded, Some((k, _)) if *k == key);
        if !cached {
            let embedded = self
                .run(EmbedImages {
                    images: &data.images,
                    ctx,
                })
                .await?;
            self.image_embedded = Some((key, embedded));
        }
        let embedded = &self.image_embedded.as_ref().expect("just stored").1;
        let failed: Vec<(usize, String)> = embedded
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().err().map(|why| (i, why.clone())))
            .collect();
        let embeddings: Vec<Vec<f32>> = embedded.iter().filter_map(|e| e.as_ref().ok().cloned()).collect();
        data.drop_failed(&failed)?;
        let job = TrainHead {
            embeddings: &embeddings,
            labels: &data.labels,
            names: &data.label_names,
            config,
            ctx,
        };
        let t = self.run(job).await?;
        let meta = HeadMeta {
            labels: data.label_names.clone(),
            encoder,
            input,
            hidden: config.hidden,
            pooling: IMAGE_POOLING.into(),
            metrics: Some(t.metrics.clone()),
            config: Some(config),
        };
        let head = head_info(&meta);
        self.image_head = Some((t.weights, meta));
        Ok(TrainSummary {
            head,
            class_counts: data.class_counts(),
            labels: data.label_names.clone(),
            skipped_rows: data.skipped.len(),
            warnings: data.warnings(),
            history: t.history,
            best_epoch: t.best_epoch,
            stopped_early: t.stopped_early,
            cancelled: t.cancelled,
            metrics: t.metrics,
            cached_embeddings: cached,
        })
    }

    pub(super) fn export_image_head(&self) -> Response {
        let Some((weights, meta)) = &self.image_head else {
            return error("there is no trained image head to export yet");
        };
        match head_to_safetensors(weights, meta) {
            Ok(safetensors) => Response::HeadFile {
                safetensors,
                json: serde_json::to_string_pretty(meta).unwrap_or_default(),
            },
            Err(e) => error(e),
        }
    }

    /// Installs an image head exported before; a text head is refused with where it goes,
    /// and a refused file leaves the installed head as it was.
    pub(super) fn import_image_head(&mut self, name: String, files: Vec<Vec<u8>>) -> Response {
        let [bytes] = <[Vec<u8>; 1]>::try_from(files).unwrap_or_else(|_| [Vec::new()]);
        match head_from_safetensors(&name, &bytes) {
            Ok((weights, meta)) if meta.pooling == IMAGE_POOLING => {
                self.install_image_head(&name, weights, meta)
            }
            Ok((_, meta)) => error(format!(
                "{name} is a text head ({}, trained on {}); import it on the Fine-tune tab",
                meta.labels.join(", "),
                meta.encoder
            )),
            Err(e) => error(e),
        }
    }

    fn install_image_head(&mut self, name: &str, weights: Vec<HostTensor>, meta: HeadMeta) -> Response {
        if let Some(m) = self.model.as_ref().filter(|m| m.info.modality == "image") {
            if m.info.hidden != meta.input {
                return error(format!(
                    "{name}: the image head takes {}-wide embeddings (trained on {}), but the loaded model gives {}",
                    meta.input, meta.encoder, m.info.hidden
                ));
            }
        }
        let info = head_info(&meta);
        self.image_head = Some((weights, meta));
        Response::HeadLoaded(info)
    }

    /// Adds the image head's answers; for a ViT without a classifier they are the answers.
    pub(super) fn with_image_head(&self, results: Vec<(ImageResult, Vec<f32>)>) -> Response {
        let Some((weights, meta)) = &self.image_head else {
            return Response::ImageResults {
                results: results.into_iter().map(|(r, _)| r).collect(),
            };
        };
        let good: Vec<Vec<f32>> = results
            .iter()
            .filter(|(r, _)| r.error.is_none())
            .map(|(_, e)| e.clone())
            .collect();
        let cpu = CpuBackend::new();
        let logits = match Head::from_host(&cpu, meta.head_config(), weights)
            .and_then(|h| classify_embeddings(&cpu, &h, &good))
        {
            Ok(l) => l,
            Err(e) => {
                return error(format!(
                    "the trained image head cannot be used on this model: {e}"
                ))
            }
        };
        let mut logits = logits.into_iter();
        let results = results
            .into_iter()
            .map(|(mut r, _)| {
                if r.error.is_some() {
                    return r;
                }
                let Some(l) = logits.next() else { return r };
                let head = head_result(meta, &l);
                if r.probs.is_empty() {
                    r.label = head.label.clone();
                    r.labels = head.labels.clone();
                    r.probs = head.probs.clone();
                }
                r.head = Some(head);
                r
            })
            .collect();
        Response::ImageResults { results }
    }

    /// The installed image head, if any.
    pub fn image_head_info(&self) -> Option<HeadInfo> {
        self.image_head.as_ref().map(|(_, m)| head_info(m))
    }
}
