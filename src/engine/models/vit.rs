//! ViT (pre-LN): image patches projected by the patch "convolution" (a stride-`patch`
//! conv is a dense layer over flattened patches), a `[CLS]` token, learned positions, the
//! shared encoder, a final LayerNorm, and a linear classifier on `[CLS]`.

use super::super::backend::{Backend, Result};
use super::super::checkpoint::Checkpoint;
use super::super::config::VitConfig;
use super::super::encoder::{Encoder, Layer, LayerNorm, Linear, NormPlacement};
use super::super::EngineError;
use super::{prefix, HeadOutput};

pub struct Vit<B: Backend> {
    pub cfg: VitConfig,
    patch: Linear<B>,
    cls_token: B::Tensor,
    position: B::Tensor,
    pub encoder: Encoder<B>,
    final_norm: LayerNorm<B>,
    pooler: Option<Linear<B>>,
    classifier: Option<Linear<B>>,
}

impl<B: Backend> Vit<B> {
    pub fn load(be: &B, c: &VitConfig, ckpt: &mut Checkpoint, num_labels: Option<usize>) -> Result<Self> {
        let p = prefix(ckpt, "vit");
        let d = c.hidden_size;
        let (ch, ps) = (c.num_channels, c.patch_size);
        let n = (c.image_size / ps).pow(2);
        let w = ckpt.take(
            &format!("{p}embeddings.patch_embeddings.projection.weight"),
            &[d, ch, ps, ps],
        )?;
        let b = ckpt.take(&format!("{p}embeddings.patch_embeddings.projection.bias"), &[d])?;
        // [d, ch, ps, ps] row-major is already [d, ch·ps·ps]: the conv as a dense layer.
        let patch = Linear {
            w: be.upload(&w.data, &[d, ch * ps * ps])?,
            b: Some(be.upload(&b.data, &[d])?),
        };
        let cls = ckpt.take(&format!("{p}embeddings.cls_token"), &[1, 1, d])?;
        let pos = ckpt.take(&format!("{p}embeddings.position_embeddings"), &[1, n + 1, d])?;
        let cls_token = be.upload(&cls.data, &[1, d])?;
        let position = be.upload(&pos.data, &[n + 1, d])?;
        let eps = c.layer_norm_eps;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let l = format!("{p}encoder.layer.{i}");
            let ffn = c.intermediate_size;
            layers.push(Layer {
                query: Linear::load(be, ckpt, &format!("{l}.attention.attention.query"), d, d)?,
                key: Linear::load(be, ckpt, &format!("{l}.attention.attention.key"), d, d)?,
                value: Linear::load(be, ckpt, &format!("{l}.attention.attention.value"), d, d)?,
                attn_out: Linear::load(be, ckpt, &format!("{l}.attention.output.dense"), d, d)?,
                norm1: LayerNorm::load(be, ckpt, &format!("{l}.layernorm_before"), d, eps)?,
                ffn_in: Linear::load(be, ckpt, &format!("{l}.intermediate.dense"), d, ffn)?,
                ffn_out: Linear::load(be, ckpt, &format!("{l}.output.dense"), ffn, d)?,
                norm2: LayerNorm::load(be, ckpt, &format!("{l}.layernorm_after"), d, eps)?,
            });
        }
        let encoder = Encoder {
            layers,
            heads: c.num_attention_heads,
            placement: NormPlacement::Pre,
        };
        let final_norm = LayerNorm::load(be, ckpt, &format!("{p}layernorm"), d, eps)?;
        let pooler_name = format!("{p}pooler.dense");
        let pooler = if num_labels.is_none() && ckpt.contains(&format!("{pooler_name}.weight")) {
            Some(Linear::load(be, ckpt, &pooler_name, d, d)?)
        } else {
            None
        };
        let classifier = match num_labels {
            Some(k) => Some(Linear::load(be, ckpt, "classifier", d, k)?),
            None => None,
        };
        Ok(Self {
            cfg: c.clone(),
            patch,
            cls_token,
            position,
            encoder,
            final_norm,
            pooler,
            classifier,
        })
    }

    /// Tokens per image: the patches and `[CLS]`.
    pub fn seq_len(&self) -> usize {
        (self.cfg.image_size / self.cfg.patch_size).pow(2) + 1
    }

    /// `images`: each `[channels, size, size]` row-major (the preprocessor's output).
    pub fn embed(&self, be: &B, images: &[Vec<f32>]) -> Result<B::Tensor> {
        let c = &self.cfg;
        let (ch, s, ps) = (c.num_channels, c.image_size, c.patch_size);
        let g = s / ps;
        let mut patches = Vec::with_capacity(images.len() * g * g * ch * ps * ps);
        for (i, img) in images.iter().enumerate() {
            if img.len() != ch * s * s {
                return Err(EngineError::Input(format!(
                    "image {i} has {} values; the model takes {ch}×{s}×{s}",
                    img.len()
                )));
            }
            // Patches in row-major grid order, each flattened as (channel, y, x) like the conv weight.
            for gy in 0..g {
                for gx in 0..g {
                    for c in 0..ch {
                        for y in 0..ps {
                            let row = c * s * s + (gy * ps + y) * s + gx * ps;
                            patches.extend_from_slice(&img[row..row + ps]);
                        }
                    }
                }
            }
        }
        let n = g * g;
        let patches = be.upload(&patches, &[images.len() * n, ch * ps * ps])?;
        let projected = self.patch.forward(be, &patches)?;
        // Row 0 of `table` is [CLS], then every image's patches: gather interleaves them.
        let table = be.concat_rows(&[&self.cls_token, &projected])?;
        let mut rows = Vec::with_capacity(images.len() * (n + 1));
        let mut positions = Vec::with_capacity(rows.capacity());
        for i in 0..images.len() {
            rows.push(0u32);
            rows.extend((0..n).map(|j| (1 + i * n + j) as u32));
            positions.extend(0..=n as u32);
        }
        be.add(
            &be.gather_rows(&table, &rows)?,
            &be.gather_rows(&self.position, &positions)?,
        )
    }

    /// The final LayerNorm over every token.
    pub fn final_norm(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor> {
        self.final_norm.forward(be, x)
    }

    /// From the normed `[CLS]` rows: `(pooled, logits)`.
    pub fn head(&self, be: &B, cls: &B::Tensor) -> Result<HeadOutput<B::Tensor>> {
        let pooled = match &self.pooler {
            Some(p) => Some(be.tanh(&p.forward(be, cls)?)?),
            None => None,
        };
        let logits = match &self.classifier {
            Some(c) => Some(c.forward(be, cls)?),
            None => None,
        };
        Ok(HeadOutput { pooled, logits })
    }
}
