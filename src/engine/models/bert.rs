//! BERT (post-LN): word + token-type + position embeddings, the shared encoder, a tanh
//! pooler over `[CLS]`, and a linear classifier on the pooled vector.

use super::super::backend::{Backend, Result};
use super::super::checkpoint::Checkpoint;
use super::super::config::BertConfig;
use super::super::encoder::{load_table, Encoder, Layer, LayerNorm, Linear, NormPlacement};
use super::{prefix, HeadOutput};

pub struct Bert<B: Backend> {
    word: B::Tensor,
    position: B::Tensor,
    token_type: B::Tensor,
    emb_norm: LayerNorm<B>,
    pub encoder: Encoder<B>,
    pooler: Option<Linear<B>>,
    classifier: Option<Linear<B>>,
}

impl<B: Backend> Bert<B> {
    pub fn load(be: &B, c: &BertConfig, ckpt: &mut Checkpoint, num_labels: Option<usize>) -> Result<Self> {
        let p = prefix(ckpt, "bert");
        let d = c.hidden_size;
        let mut table =
            |name: &str, rows: usize| load_table(be, ckpt, &format!("{p}embeddings.{name}.weight"), rows, d);
        let word = table("word_embeddings", c.vocab_size)?;
        let position = table("position_embeddings", c.max_position_embeddings)?;
        let token_type = table("token_type_embeddings", c.type_vocab_size)?;
        let emb_norm = LayerNorm::load(be, ckpt, &format!("{p}embeddings.LayerNorm"), d, c.layer_norm_eps)?;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let l = format!("{p}encoder.layer.{i}");
            let (n, eps, ffn) = (d, c.layer_norm_eps, c.intermediate_size);
            layers.push(Layer {
                query: Linear::load(be, ckpt, &format!("{l}.attention.self.query"), n, n)?,
                key: Linear::load(be, ckpt, &format!("{l}.attention.self.key"), n, n)?,
                value: Linear::load(be, ckpt, &format!("{l}.attention.self.value"), n, n)?,
                attn_out: Linear::load(be, ckpt, &format!("{l}.attention.output.dense"), n, n)?,
                norm1: LayerNorm::load(be, ckpt, &format!("{l}.attention.output.LayerNorm"), n, eps)?,
                ffn_in: Linear::load(be, ckpt, &format!("{l}.intermediate.dense"), n, ffn)?,
                ffn_out: Linear::load(be, ckpt, &format!("{l}.output.dense"), ffn, n)?,
                norm2: LayerNorm::load(be, ckpt, &format!("{l}.output.LayerNorm"), n, eps)?,
            });
        }
        let encoder = Encoder {
            layers,
            heads: c.num_attention_heads,
            placement: NormPlacement::Post,
        };
        // Sentence-transformers exports may drop the pooler; a classifier needs it.
        let pooler_name = format!("{p}pooler.dense");
        let pooler = if num_labels.is_some() || ckpt.contains(&format!("{pooler_name}.weight")) {
            Some(Linear::load(be, ckpt, &pooler_name, d, d)?)
        } else {
            None
        };
        let classifier = match num_labels {
            Some(n) => Some(Linear::load(be, ckpt, "classifier", d, n)?),
            None => None,
        };
        Ok(Self {
            word,
            position,
            token_type,
            emb_norm,
            encoder,
            pooler,
            classifier,
        })
    }

    /// `ids` are `batch × seq` (padded), `positions` the position of each.
    pub fn embed(&self, be: &B, ids: &[u32], positions: &[u32]) -> Result<B::Tensor> {
        let zeros = vec![0u32; ids.len()];
        let x = be.add(
            &be.gather_rows(&self.word, ids)?,
            &be.gather_rows(&self.token_type, &zeros)?,
        )?;
        let x = be.add(&x, &be.gather_rows(&self.position, positions)?)?;
        self.emb_norm.forward(be, &x)
    }

    /// From the `[CLS]` rows: `(pooled, logits)`.
    pub fn head(&self, be: &B, cls: &B::Tensor) -> Result<HeadOutput<B::Tensor>> {
        let Some(pooler) = &self.pooler else {
            return Ok(HeadOutput {
                pooled: None,
                logits: None,
            });
        };
        let pooled = be.tanh(&pooler.forward(be, cls)?)?;
        let logits = match &self.classifier {
            Some(c) => Some(c.forward(be, &pooled)?),
            None => None,
        };
        Ok(HeadOutput {
            pooled: Some(pooled),
            logits,
        })
    }
}
