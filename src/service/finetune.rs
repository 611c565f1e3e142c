//! Fine-tuning in the worker: inspect a CSV, embed its texts (cached), train a head on the
//! loaded model's backend, and use, export or import the head.

use super::jobs::{EmbedTexts, TrainHead};
use super::{error, Ctx, Service};
use crate::engine::backend::cpu::CpuBackend;
use crate::engine::dataset::CsvTable;
use crate::engine::finetune::{
    classify_embeddings, head_from_safetensors, head_to_safetensors, HeadMeta, TrainConfig,
};
use crate::engine::model::softmax;
use crate::engine::train::Head;
use crate::engine::EngineError;
use crate::protocol::{CsvInfo, HeadInfo, HeadResult, Response, TextResult, TrainSummary};

const PREVIEW_ROWS: usize = 5;

impl Service {
    pub(super) fn inspect_csv(&mut self, name: String, files: Vec<Vec<u8>>) -> Response {
        let [bytes] = <[Vec<u8>; 1]>::try_from(files).unwrap_or_else(|_| [Vec::new()]);
        match CsvTable::parse(&name, &bytes) {
            Ok(table) => {
                let (text_col, label_col) = table.guess_columns();
                let info = CsvInfo {
                    name,
                    columns: table.headers.clone(),
                    rows: table.rows.len(),
                    delimiter: match table.delimiter {
                        b'\t' => "tab".to_string(),
                        d => (d as char).to_string(),
                    },
                    has_header: table.has_header,
                    text_col,
                    label_col,
                    preview: table
                        .preview(PREVIEW_ROWS)
                        .iter()
                        .map(|r| r.cells.clone())
                        .collect(),
                };
                self.csv = Some(table);
                Response::CsvInfo(info)
            }
            // The CSV inspected before (if any) stays.
            Err(e) => error(e),
        }
    }

    pub(super) async fn train(
        &mut self,
        text_col: usize,
        label_col: usize,
        config: TrainConfig,
        ctx: &Ctx<'_>,
    ) -> Response {
        match self.train_inner(text_col, label_col, config, ctx).await {
            Ok(summary) => Response::Trained(Box::new(summary)),
            Err(e) => error(e),
        }
    }

    async fn train_inner(
        &mut self,
        text_col: usize,
        label_col: usize,
        config: TrainConfig,
        ctx: &Ctx<'_>,
    ) -> Result<TrainSummary, EngineError> {
        let table = self
            .csv
            .as_ref()
            .ok_or_else(|| EngineError::Input("drop a CSV first".into()))?;
        let data = table.dataset(text_col, label_col)?;
        let model = self.model.as_ref().ok_or_else(|| {
            EngineError::Input("load an encoder model first (e.g. all-MiniLM-L6-v2)".into())
        })?;
        if model.info.modality != "text" {
            return Err(EngineError::Input(
                "the loaded model takes images; load a text encoder to train on a CSV".into(),
            ));
        }
        let encoder = model.info.source.clone();
        let input = model.info.hidden;
        let key = format!(
            "{encoder}|{}|{}|{}|{text_col}",
            table.file_name,
            table.rows.len(),
            model.info.architecture
        );
        let cached = matches!(&self.embedded, Some((k, e)) if *k == key && e.len() == data.texts.len());
        if !cached {
            let embeddings = self
                .run(EmbedTexts {
                    texts: &data.texts,
                    ctx,
                })
                .await?;
            self.embedded = Some((key, embeddings));
        }
        // `run` needs `&mut self`, so the job gets its own copy of the cached embeddings.
        let embeddings = self.embedded.as_ref().expect("just stored").1.clone();
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
            pooling: "mean".into(),
            metrics: Some(t.metrics.clone()),
            config: Some(config),
        };
        let head = head_info(&meta);
        self.head = Some((t.weights, meta));
        Ok(TrainSummary {
            head,
            class_counts: data.class_counts(),
            labels: data.label_names,
            skipped_rows: data.skipped_empty + data.skipped_ragged,
            warnings: data.warnings,
            history: t.history,
            best_epoch: t.best_epoch,
            stopped_early: t.stopped_early,
            cancelled: t.cancelled,
            metrics: t.metrics,
            cached_embeddings: cached,
        })
    }

    pub(super) fn export_head(&self) -> Response {
        let Some((weights, meta)) = &self.head else {
            return error("there is no trained head to export yet");
        };
        match head_to_safetensors(weights, meta) {
            Ok(safetensors) => Response::HeadFile {
                safetensors,
                json: serde_json::to_string_pretty(meta).unwrap_or_default(),
            },
            Err(e) => error(e),
        }
    }

    pub(super) fn import_head(&mut self, name: String, files: Vec<Vec<u8>>) -> Response {
        let [bytes] = <[Vec<u8>; 1]>::try_from(files).unwrap_or_else(|_| [Vec::new()]);
        match head_from_safetensors(&name, &bytes) {
            Ok((_, meta)) if meta.pooling == super::finetune_images::IMAGE_POOLING => error(format!(
                "{name} is an image head ({}, trained on {}); import it in the image section \
                 (Classify images → Teach it your own classes)",
                meta.labels.join(", "),
                meta.encoder
            )),
            Ok((weights, meta)) => {
                if let Some(m) = self.model.as_ref().filter(|m| m.info.modality == "text") {
                    if m.info.hidden != meta.input {
                        return error(format!(
                            "{name}: the head takes {}-wide embeddings (trained on {}), but the loaded model gives {}",
                            meta.input, meta.encoder, m.info.hidden
                        ));
                    }
                }
                let info = head_info(&meta);
                self.head = Some((weights, meta));
                Response::HeadLoaded(info)
            }
            Err(e) => error(e),
        }
    }

    /// Adds the trained head's answers; for an encoder without a classifier they are the
    /// answers.
    pub(super) fn with_head(&self, results: Vec<(TextResult, Vec<f32>)>) -> Response {
        let has_own = results.first().is_some_and(|(r, _)| !r.probs.is_empty());
        let Some((weights, meta)) = &self.head else {
            if !has_own && !results.is_empty() {
                return error("this model is an encoder without a classifier; train a head for it on the Fine-tune tab first");
            }
            return Response::TextResults {
                results: results.into_iter().map(|(r, _)| r).collect(),
            };
        };
        let cpu = CpuBackend::new();
        let embeddings: Vec<Vec<f32>> = results.iter().map(|(_, e)| e.clone()).collect();
        let logits = match Head::from_host(&cpu, meta.head_config(), weights)
            .and_then(|h| classify_embeddings(&cpu, &h, &embeddings))
        {
            Ok(l) => l,
            Err(e) => return error(e),
        };
        let results = results
            .into_iter()
            .zip(logits)
            .map(|((mut r, _), l)| {
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
        Response::TextResults { results }
    }

    /// The installed head, if any.
    pub fn head_info(&self) -> Option<HeadInfo> {
        self.head.as_ref().map(|(_, m)| head_info(m))
    }
}

/// A head's answer from its logits: probabilities, and the most probable label.
pub(super) fn head_result(meta: &HeadMeta, logits: &[f32]) -> HeadResult {
    let probs = softmax(logits);
    let best = probs
        .iter()
        .enumerate()
        .fold(0, |b, (j, &v)| if v > probs[b] { j } else { b });
    HeadResult {
        label: meta.labels[best].clone(),
        labels: meta.labels.clone(),
        probs,
    }
}

pub(super) fn head_info(meta: &HeadMeta) -> HeadInfo {
    HeadInfo {
        labels: meta.labels.clone(),
        encoder: meta.encoder.clone(),
        input: meta.input,
        hidden: meta.hidden,
        metrics: meta.metrics.clone(),
    }
}
