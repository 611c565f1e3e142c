//! A loaded model of any supported architecture, and what a forward pass returns.

use serde::Serialize;

use super::backend::{Backend, Result};
use super::checkpoint::Checkpoint;
use super::config::{ConfigKind, ModelConfig};
use super::encoder::{Encoder, EncoderOutput, Want};
use super::models::{bert::Bert, distilbert::DistilBert, vit::Vit, HeadOutput};
use super::EngineError;

enum Net<B: Backend> {
    Bert(Bert<B>),
    DistilBert(DistilBert<B>),
    Vit(Vit<B>),
}

pub struct Model<B: Backend> {
    pub config: ModelConfig,
    net: Net<B>,
}

/// One input's results. Vectors are over the input's own tokens (no padding).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Prediction {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logits: Option<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probs: Option<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Mean of the last hidden states over the input's tokens (not normalised).
    pub embedding: Vec<f32>,
    /// The last hidden state of the first (`[CLS]`) token.
    #[serde(skip)]
    pub cls: Vec<f32>,
    /// BERT's / ViT's tanh pooler output, where the checkpoint has one.
    #[serde(skip)]
    pub pooled: Option<Vec<f32>>,
    /// `[layer][head][query][key]`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attentions: Option<Vec<Vec<Vec<Vec<f32>>>>>,
    /// `[layer 0 = embeddings .. layers][token][feature]`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hidden_states: Option<Vec<Vec<Vec<f32>>>>,
}

impl<B: Backend> Model<B> {
    /// Builds the model from its config and checkpoint, checking every tensor's shape.
    pub fn load(be: &B, config: ModelConfig, mut ckpt: Checkpoint) -> Result<Self> {
        let labels = config
            .architecture
            .has_classifier()
            .then_some(config.labels.len());
        let net = match &config.kind {
            ConfigKind::Bert(c) => Net::Bert(Bert::load(be, c, &mut ckpt, labels)?),
            ConfigKind::DistilBert(c) => Net::DistilBert(DistilBert::load(be, c, &mut ckpt, labels)?),
            ConfigKind::Vit(c) => Net::Vit(Vit::load(be, c, &mut ckpt, labels)?),
        };
        Ok(Self { config, net })
    }

    /// Attention heads per layer.
    pub fn heads(&self) -> usize {
        self.encoder().heads
    }

    fn encoder(&self) -> &Encoder<B> {
        match &self.net {
            Net::Bert(m) => &m.encoder,
            Net::DistilBert(m) => &m.encoder,
            Net::Vit(m) => &m.encoder,
        }
    }

    /// Runs a batch of token id sequences (each as given, with its special tokens).
    /// Shorter sequences are padded and masked, so a result does not depend on its batch.
    pub fn run_text(&self, be: &B, inputs: &[Vec<u32>], want: Want) -> Result<Vec<Prediction>> {
        let fwd = self.forward_text(be, inputs, want)?;
        let host = be.download_all(&fwd.tensors())?;
        Ok(self.split(fwd, host))
    }

    /// [`Model::run_text`] with a read-back that does not block (the browser's WebGPU).
    pub async fn run_text_async(&self, be: &B, inputs: &[Vec<u32>], want: Want) -> Result<Vec<Prediction>> {
        let fwd = self.forward_text(be, inputs, want)?;
        let host = be.download_all_async(&fwd.tensors()).await?;
        Ok(self.split(fwd, host))
    }

    /// Runs a batch of preprocessed images, each `[channels, size, size]`.
    pub fn run_images(&self, be: &B, images: &[Vec<f32>], want: Want) -> Result<Vec<Prediction>> {
        let fwd = self.forward_images(be, images, want)?;
        let host = be.download_all(&fwd.tensors())?;
        Ok(self.split(fwd, host))
    }

    /// [`Model::run_images`] with a read-back that does not block.
    pub async fn run_images_async(&self, be: &B, images: &[Vec<f32>], want: Want) -> Result<Vec<Prediction>> {
        let fwd = self.forward_images(be, images, want)?;
        let host = be.download_all_async(&fwd.tensors()).await?;
        Ok(self.split(fwd, host))
    }

    /// Records the whole forward pass on the backend; nothing is read back yet.
    fn forward_text(&self, be: &B, inputs: &[Vec<u32>], want: Want) -> Result<Forward<B>> {
        if inputs.is_empty() {
            return Ok(Forward::empty());
        }
        let max_pos = self.config.max_positions().ok_or_else(|| {
            EngineError::Input("this is an image model; it takes images, not text".to_string())
        })?;
        let seq = inputs.iter().map(Vec::len).max().unwrap_or(0);
        if let Some((i, _)) = inputs.iter().enumerate().find(|(_, ids)| ids.is_empty()) {
            return Err(EngineError::Input(format!("input {i} has no tokens")));
        }
        if seq > max_pos {
            return Err(EngineError::Input(format!(
                "an input has {seq} tokens; the model takes at most {max_pos}"
            )));
        }
        let batch = inputs.len();
        let mut ids = Vec::with_capacity(batch * seq);
        let mut positions = Vec::with_capacity(batch * seq);
        let mut mask = Vec::with_capacity(batch * seq);
        for input in inputs {
            for t in 0..seq {
                ids.push(input.get(t).copied().unwrap_or(0));
                positions.push(t as u32);
                mask.push(if t < input.len() { 1.0 } else { 0.0 });
            }
        }
        let x = match &self.net {
            Net::Bert(m) => m.embed(be, &ids, &positions)?,
            Net::DistilBert(m) => m.embed(be, &ids, &positions)?,
            Net::Vit(_) => unreachable!("max_positions is None for ViT"),
        };
        let out = self.encoder().forward(be, x, batch, seq, &mask, want)?;
        let lens: Vec<usize> = inputs.iter().map(Vec::len).collect();
        self.heads_of(be, out, seq, lens)
    }

    fn forward_images(&self, be: &B, images: &[Vec<f32>], want: Want) -> Result<Forward<B>> {
        let Net::Vit(vit) = &self.net else {
            return Err(EngineError::Input(
                "this is a text model; it takes text, not images".to_string(),
            ));
        };
        if images.is_empty() {
            return Ok(Forward::empty());
        }
        let seq = vit.seq_len();
        let x = vit.embed(be, images)?;
        let mask = vec![1.0; images.len() * seq];
        let out = self.encoder().forward(be, x, images.len(), seq, &mask, want)?;
        self.heads_of(be, out, seq, vec![seq; images.len()])
    }

    /// The heads on a batch's encoder output.
    fn heads_of(&self, be: &B, out: EncoderOutput<B>, seq: usize, lens: Vec<usize>) -> Result<Forward<B>> {
        let batch = lens.len();
        let last = match &self.net {
            Net::Vit(vit) => vit.final_norm(be, &out.last)?,
            _ => out.last,
        };
        let cls_rows: Vec<u32> = (0..batch).map(|i| (i * seq) as u32).collect();
        let cls = be.gather_rows(&last, &cls_rows)?;
        let HeadOutput { pooled, logits } = match &self.net {
            Net::Bert(m) => m.head(be, &cls)?,
            Net::DistilBert(m) => HeadOutput {
                pooled: None,
                logits: m.head(be, &cls)?,
            },
            Net::Vit(m) => m.head(be, &cls)?,
        };
        Ok(Forward {
            tensors: Some(Tensors {
                last,
                pooled,
                logits,
                hidden: out.hidden_states,
                attn: out.attentions,
            }),
            seq,
            lens,
        })
    }

    /// Splits a batch's read-back outputs (in [`Forward::tensors`] order) per input.
    fn split(&self, fwd: Forward<B>, host: Vec<Vec<f32>>) -> Vec<Prediction> {
        let Some(t) = &fwd.tensors else {
            return Vec::new();
        };
        let (seq, lens) = (fwd.seq, &fwd.lens);
        let mut host = host.into_iter();
        let mut next = || host.next().unwrap_or_default();
        let last = next();
        let pooled = t.pooled.as_ref().map(|_| next());
        let logits = t.logits.as_ref().map(|_| next());
        let hidden: Vec<Vec<f32>> = t.hidden.iter().map(|_| next()).collect();
        let attn: Vec<Vec<f32>> = t.attn.iter().map(|_| next()).collect();
        let d = self.config.hidden_size();
        let batch = lens.len();
        let heads = self.encoder().heads;
        let k = self.config.labels.len();

        let mut preds = Vec::with_capacity(batch);
        for (i, &n) in lens.iter().enumerate() {
            let rows = |flat: &[f32]| -> Vec<Vec<f32>> {
                (0..n)
                    .map(|t| flat[(i * seq + t) * d..(i * seq + t + 1) * d].to_vec())
                    .collect()
            };
            let own = rows(&last);
            let mut embedding = vec![0f32; d];
            for row in &own {
                for (e, v) in embedding.iter_mut().zip(row) {
                    *e += v;
                }
            }
            embedding.iter_mut().for_each(|e| *e /= n as f32);
            let mut p = Prediction {
                embedding,
                cls: own[0].clone(),
                pooled: pooled.as_ref().map(|p| p[i * d..(i + 1) * d].to_vec()),
                ..Default::default()
            };
            if let Some(l) = &logits {
                let l = l[i * k..(i + 1) * k].to_vec();
                let probs = softmax(&l);
                let best = probs
                    .iter()
                    .enumerate()
                    .fold(0, |b, (j, &v)| if v > probs[b] { j } else { b });
                p.label = Some(self.config.labels[best].clone());
                p.probs = Some(probs);
                p.logits = Some(l);
            }
            if !hidden.is_empty() {
                p.hidden_states = Some(hidden.iter().map(|h| rows(h)).collect());
            }
            if !attn.is_empty() {
                p.attentions = Some(
                    attn.iter()
                        .map(|a| {
                            (0..heads)
                                .map(|h| {
                                    (0..n)
                                        .map(|q| {
                                            let base = ((i * heads + h) * seq + q) * seq;
                                            a[base..base + n].to_vec()
                                        })
                                        .collect()
                                })
                                .collect()
                        })
                        .collect(),
                );
            }
            preds.push(p);
        }
        preds
    }
}

/// A batch's outputs, still on the backend.
struct Forward<B: Backend> {
    tensors: Option<Tensors<B>>,
    seq: usize,
    lens: Vec<usize>,
}

struct Tensors<B: Backend> {
    last: B::Tensor,
    pooled: Option<B::Tensor>,
    logits: Option<B::Tensor>,
    hidden: Vec<B::Tensor>,
    attn: Vec<B::Tensor>,
}

impl<B: Backend> Forward<B> {
    fn empty() -> Self {
        Self {
            tensors: None,
            seq: 0,
            lens: Vec::new(),
        }
    }

    /// Everything to read back, in the order [`Model::split`] takes it.
    fn tensors(&self) -> Vec<&B::Tensor> {
        let Some(t) = &self.tensors else {
            return Vec::new();
        };
        std::iter::once(&t.last)
            .chain(&t.pooled)
            .chain(&t.logits)
            .chain(&t.hidden)
            .chain(&t.attn)
            .collect()
    }
}

/// Softmax in f64 so that probabilities of large logits stay exact to f32.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exps: Vec<f64> = logits.iter().map(|&l| (l as f64 - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| (e / sum) as f32).collect()
}
