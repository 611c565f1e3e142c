//! Fine-tuning a head on frozen embeddings: stratified split, mini-batch AdamW epochs, early
//! stopping on the validation loss, and the metrics a user judges the head by. Written over
//! [`TrainOps`], so the same loop trains on the CPU and on the GPU; read-backs go through
//! [`Backend::download_all_async`], so it also runs in the browser's worker.
//!
//! Also the head's file format: `head.safetensors` (PyTorch names, see [`HeadConfig::params`])
//! with the labels, encoder and metrics in its metadata, mirrored in a small JSON file.

use std::collections::HashMap;
use std::future::Future;

use serde::{Deserialize, Serialize};

use super::backend::{AdamWConfig, Backend, Result, TrainOps};
use super::dataset::stratified_split;
use super::rng::SplitMix64;
use super::train::{Head, HeadConfig, HeadTrainer, HostTensor};
use super::EngineError;

/// What the user can change (the UI's "advanced" section); the defaults suit a few hundred
/// to a few thousand sentence embeddings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// A ReLU hidden layer of this width, or a linear head.
    pub hidden: Option<usize>,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    /// Part of every class held out to validate (and to stop early on).
    pub val_fraction: f32,
    /// Stop after this many epochs without a better validation loss.
    pub patience: usize,
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            hidden: None,
            epochs: 60,
            batch_size: 32,
            lr: 3e-3,
            weight_decay: 0.01,
            val_fraction: 0.2,
            patience: 6,
            seed: 0,
        }
    }
}

/// One epoch, as the curves show it. Losses are mean cross-entropy over the whole split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    /// The best validation loss so far (this epoch's head is the one kept).
    pub best: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub label: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Validation examples of this class.
    pub support: usize,
}

/// The kept head on the validation split.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub accuracy: f64,
    pub macro_f1: f64,
    /// `confusion[true][predicted]`, in label order.
    pub confusion: Vec<Vec<usize>>,
    pub per_class: Vec<ClassMetrics>,
}

/// A finished training.
pub struct Trained<B: Backend> {
    pub head: Head<B>,
    pub history: Vec<EpochReport>,
    /// The epoch whose head was kept (1-based).
    pub best_epoch: usize,
    pub metrics: Metrics,
    /// Whether it ended on patience before the last epoch.
    pub stopped_early: bool,
}

/// Trains a head on `embeddings` (one row per example) with `labels` indexing
/// `label_names`. `on_epoch` hears every epoch and returns `false` to cancel (the best head so
/// far is kept). Fails on inconsistent inputs.
pub async fn train_head<B: TrainOps>(
    be: &B,
    embeddings: &[Vec<f32>],
    labels: &[u32],
    label_names: &[String],
    config: &TrainConfig,
    on_epoch: impl FnMut(&EpochReport) -> bool,
) -> Result<Trained<B>> {
    let go_on = || std::future::ready(true);
    train_head_with(be, embeddings, labels, label_names, config, on_epoch, go_on).await
}

/// [`train_head`] that also awaits `after_batch` after every mini-batch: the browser's worker
/// lets its event loop run there (so a cancel arrives within a batch, not an epoch), and a
/// `false` stops the training at once. The unfinished epoch is dropped and the best head of
/// the finished ones is kept; cancelled before the first epoch ended, it is an error. Waiting
/// changes nothing in the arithmetic: the same seed gives the same head.
pub async fn train_head_with<B: TrainOps, F: Future<Output = bool>>(
    be: &B,
    embeddings: &[Vec<f32>],
    labels: &[u32],
    label_names: &[String],
    config: &TrainConfig,
    mut on_epoch: impl FnMut(&EpochReport) -> bool,
    mut after_batch: impl FnMut() -> F,
) -> Result<Trained<B>> {
    let classes = label_names.len();
    let input = embeddings.first().map(Vec::len).unwrap_or(0);
    if embeddings.len() != labels.len() {
        return Err(EngineError::Input(format!(
            "{} embeddings but {} labels",
            embeddings.len(),
            labels.len()
        )));
    }
    if classes < 2 {
        return Err(EngineError::Input(
            "a classifier needs at least two classes".into(),
        ));
    }
    if let Some(bad) = labels.iter().find(|&&l| l as usize >= classes) {
        return Err(EngineError::Input(format!(
            "label {bad} but only {classes} classes"
        )));
    }
    if embeddings.iter().any(|e| e.len() != input) || input == 0 {
        return Err(EngineError::Input("embeddings of different widths".into()));
    }
    if config.batch_size == 0 || config.epochs == 0 {
        return Err(EngineError::Input(
            "batch size and epochs must be at least 1".into(),
        ));
    }
    let (train, val) = stratified_split(labels, config.val_fraction, config.seed);
    if train.is_empty() || val.is_empty() {
        return Err(EngineError::Input(format!(
            "{} examples are too few to split into training and validation",
            labels.len()
        )));
    }
    let flat: Vec<f32> = embeddings.iter().flatten().copied().collect();
    let x_all = be.upload(&flat, &[embeddings.len(), input])?;
    let rows = |idx: &[usize]| -> Vec<u32> { idx.iter().map(|&i| i as u32).collect() };
    let x_train = be.gather_rows(&x_all, &rows(&train))?;
    let x_val = be.gather_rows(&x_all, &rows(&val))?;
    let y_train: Vec<u32> = train.iter().map(|&i| labels[i]).collect();
    let y_val: Vec<u32> = val.iter().map(|&i| labels[i]).collect();

    let head_config = HeadConfig {
        input,
        hidden: config.hidden,
        classes,
    };
    let adamw = AdamWConfig {
        lr: config.lr,
        weight_decay: config.weight_decay,
        ..AdamWConfig::default()
    };
    let mut trainer = HeadTrainer::new(be, Head::new(be, head_config, config.seed)?, adamw)?;
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut rng = SplitMix64(config.seed ^ 0x005E_ED0F_E90C);
    let mut history = Vec::new();
    let mut best: Option<(f64, usize, Head<B>)> = None;
    let mut stopped_early = false;

    'epochs: for epoch in 1..=config.epochs {
        shuffle(&mut order, &mut rng);
        for batch in order.chunks(config.batch_size) {
            let idx: Vec<u32> = batch.iter().map(|&i| i as u32).collect();
            let x = be.gather_rows(&x_train, &idx)?;
            let y: Vec<u32> = batch.iter().map(|&i| y_train[i]).collect();
            // The loss stays on the backend: nothing waits for the GPU inside an epoch.
            trainer.step_lazy(be, &x, &y)?;
            if !after_batch().await {
                break 'epochs;
            }
        }
        let head = trainer.head();
        let (lt, lv) = (head.logits(be, &x_train)?, head.logits(be, &x_val)?);
        let host = be.download_all_async(&[&lt, &lv]).await?;
        let (train_loss, train_accuracy) = loss_and_accuracy(&host[0], &y_train, classes);
        let (val_loss, val_accuracy) = loss_and_accuracy(&host[1], &y_val, classes);
        let improved = best.as_ref().is_none_or(|(l, _, _)| val_loss < *l);
        if improved {
            best = Some((val_loss, epoch, head.clone()));
        }
        let report = EpochReport {
            epoch,
            train_loss,
            train_accuracy,
            val_loss,
            val_accuracy,
            best: improved,
        };
        let go_on = on_epoch(&report);
        history.push(report);
        if !go_on {
            break;
        }
        let since_best = epoch - best.as_ref().map_or(epoch, |b| b.1);
        if since_best >= config.patience && epoch < config.epochs {
            stopped_early = true;
            break;
        }
    }
    let (_, best_epoch, head) =
        best.ok_or_else(|| EngineError::Input("training was cancelled before the first epoch ended".into()))?;
    let lv = head.logits(be, &x_val)?;
    let logits = be.download_all_async(&[&lv]).await?.remove(0);
    let predicted = argmax_rows(&logits, classes);
    let metrics = metrics(&predicted, &y_val, label_names);
    Ok(Trained {
        head,
        history,
        best_epoch,
        metrics,
        stopped_early,
    })
}

/// Fisher–Yates: the same order on every platform for a seed.
fn shuffle(v: &mut [usize], rng: &mut SplitMix64) {
    for i in (1..v.len()).rev() {
        v.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
}

/// Mean cross-entropy (in f64) and accuracy of row-major logits.
fn loss_and_accuracy(logits: &[f32], labels: &[u32], classes: usize) -> (f64, f64) {
    let mut loss = 0.0;
    let mut right = 0;
    for (row, &y) in logits.chunks(classes).zip(labels) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let sum: f64 = row.iter().map(|&l| (l as f64 - max).exp()).sum();
        loss += max + sum.ln() - row[y as usize] as f64;
        if argmax(row) == y as usize {
            right += 1;
        }
    }
    let n = labels.len().max(1) as f64;
    (loss / n, right as f64 / n)
}

fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold(0, |b, (j, &v)| if v > row[b] { j } else { b })
}

fn argmax_rows(logits: &[f32], classes: usize) -> Vec<u32> {
    logits.chunks(classes).map(|r| argmax(r) as u32).collect()
}

/// Accuracy, confusion matrix and per-class precision / recall / F1 (0 where undefined).
pub fn metrics(predicted: &[u32], truth: &[u32], label_names: &[String]) -> Metrics {
    let k = label_names.len();
    let mut confusion = vec![vec![0usize; k]; k];
    for (&p, &t) in predicted.iter().zip(truth) {
        confusion[t as usize][p as usize] += 1;
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let per_class: Vec<ClassMetrics> = (0..k)
        .map(|c| {
            let tp = confusion[c][c];
            let support: usize = confusion[c].iter().sum();
            let predicted_c: usize = confusion.iter().map(|r| r[c]).sum();
            let (precision, recall) = (ratio(tp, predicted_c), ratio(tp, support));
            let f1 = if precision + recall == 0.0 {
                0.0
            } else {
                2.0 * precision * recall / (precision + recall)
            };
            ClassMetrics {
                label: label_names[c].clone(),
                precision,
                recall,
                f1,
                support,
            }
        })
        .collect();
    let right: usize = (0..k).map(|c| confusion[c][c]).sum();
    Metrics {
        accuracy: ratio(right, truth.len()),
        macro_f1: per_class.iter().map(|c| c.f1).sum::<f64>() / k.max(1) as f64,
        confusion,
        per_class,
    }
}

/// What travels with a head's weights: enough to use it again on the right encoder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadMeta {
    /// Class names, in the order of the head's outputs (the CSV's own label strings).
    pub labels: Vec<String>,
    /// Which encoder produced the embeddings (a hub id or a folder name).
    pub encoder: String,
    /// The encoder's width, checked when the head is put on a model.
    pub input: usize,
    pub hidden: Option<usize>,
    /// How token states become one embedding; only "mean" (over real tokens, not normalised).
    pub pooling: String,
    #[serde(default)]
    pub metrics: Option<Metrics>,
    #[serde(default)]
    pub config: Option<TrainConfig>,
}

const META_KEY: &str = "webformer_head";

impl HeadMeta {
    pub fn head_config(&self) -> HeadConfig {
        HeadConfig {
            input: self.input,
            hidden: self.hidden,
            classes: self.labels.len(),
        }
    }
}

/// `head.safetensors`: the weights under PyTorch's names, the [`HeadMeta`] as JSON in the
/// file's metadata.
pub fn head_to_safetensors(weights: &[HostTensor], meta: &HeadMeta) -> Result<Vec<u8>> {
    let bytes: Vec<Vec<u8>> = weights
        .iter()
        .map(|t| t.data.iter().flat_map(|f| f.to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = weights
        .iter()
        .zip(&bytes)
        .map(|(t, bytes)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, t.shape.clone(), bytes)
                .map(|v| (t.name.clone(), v))
                .map_err(|e| EngineError::Input(format!("head tensor {}: {e}", t.name)))
        })
        .collect::<Result<_>>()?;
    let json = serde_json::to_string(meta).map_err(|e| EngineError::Input(e.to_string()))?;
    let metadata = HashMap::from([(META_KEY.to_string(), json)]);
    safetensors::serialize(views, Some(metadata))
        .map_err(|e| EngineError::Input(format!("writing the head: {e}")))
}

/// Reads a head written by [`head_to_safetensors`]; every problem names the file.
pub fn head_from_safetensors(file: &str, bytes: &[u8]) -> Result<(Vec<HostTensor>, HeadMeta)> {
    let bad = |reason: String| EngineError::Checkpoint {
        file: file.to_string(),
        reason,
    };
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| bad(format!("not a valid safetensors file ({e})")))?;
    let json = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .ok_or_else(|| bad("not a webformer head (its metadata has no labels or encoder)".into()))?;
    let meta: HeadMeta =
        serde_json::from_str(json).map_err(|e| bad(format!("head metadata is malformed ({e})")))?;
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| bad(format!("not a valid safetensors file ({e})")))?;
    let config = meta.head_config();
    let mut weights = Vec::new();
    for (name, shape) in config.params() {
        let t = st
            .tensor(name)
            .map_err(|_| bad(format!("tensor {name} is missing")))?;
        if t.dtype() != safetensors::Dtype::F32 || t.shape() != shape.as_slice() {
            return Err(bad(format!(
                "tensor {name} is {:?} {:?}; expected F32 {shape:?}",
                t.dtype(),
                t.shape()
            )));
        }
        let data = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        weights.push(HostTensor {
            name: name.to_string(),
            shape,
            data,
        });
    }
    Ok((weights, meta))
}

/// Runs a future that never waits (native backends resolve read-backs at once); the
/// native CLI and tests use it for [`train_head`].
pub fn block_on_ready<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("block_on_ready: the future waited; use an executor"),
    }
}

/// Labels and probabilities of a head on embeddings.
pub fn classify_embeddings<B: Backend>(
    be: &B,
    head: &Head<B>,
    embeddings: &[Vec<f32>],
) -> Result<Vec<Vec<f32>>> {
    let input = head.config().input;
    if let Some(e) = embeddings.iter().find(|e| e.len() != input) {
        return Err(EngineError::Input(format!(
            "the head takes {input}-wide embeddings but this encoder gives {}",
            e.len()
        )));
    }
    if embeddings.is_empty() {
        return Ok(Vec::new());
    }
    let flat: Vec<f32> = embeddings.iter().flatten().copied().collect();
    let x = be.upload(&flat, &[embeddings.len(), input])?;
    let logits = be.download(&head.logits(be, &x)?)?;
    Ok(logits
        .chunks(head.config().classes)
        .map(<[f32]>::to_vec)
        .collect())
}
