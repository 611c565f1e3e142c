//! DistilBERT: BERT without token types and pooler; the classifier is
//! `pre_classifier → ReLU → classifier` on `[CLS]`. LayerNorm eps is fixed at 1e-12.
//! Sinusoidal position tables (`sinusoidal_pos_embds`) are stored in the checkpoint like
//! learned ones, so one loading path serves both.

use super::super::backend::{Backend, Result};
use super::super::checkpoint::Checkpoint;
use super::super::config::DistilBertConfig;
use super::super::encoder::{load_table, Encoder, Layer, LayerNorm, Linear, NormPlacement};
use super::super::EngineError;
use super::prefix;

const EPS: f64 = 1e-12;

pub struct DistilBert<B: Backend> {
    word: B::Tensor,
    position: B::Tensor,
    emb_norm: LayerNorm<B>,
    pub encoder: Encoder<B>,
    pre_classifier: Option<Linear<B>>,
    classifier: Option<Linear<B>>,
}

impl<B: Backend> DistilBert<B> {
    pub fn load(
        be: &B,
        c: &DistilBertConfig,
        ckpt: &mut Checkpoint,
        num_labels: Option<usize>,
    ) -> Result<Self> {
        let p = prefix(ckpt, "distilbert");
        let d = c.dim;
        let mut table =
            |name: &str, rows: usize| load_table(be, ckpt, &format!("{p}embeddings.{name}.weight"), rows, d);
        let word = table("word_embeddings", c.vocab_size)?;
        let position = table("position_embeddings", c.max_position_embeddings)?;
        let emb_norm = LayerNorm::load(be, ckpt, &format!("{p}embeddings.LayerNorm"), d, EPS)?;
        let mut layers = Vec::with_capacity(c.n_layers);
        for i in 0..c.n_layers {
            let l = format!("{p}transformer.layer.{i}");
            let ffn = c.hidden_dim;
            layers.push(Layer {
                query: Linear::load(be, ckpt, &format!("{l}.attention.q_lin"), d, d)?,
                key: Linear::load(be, ckpt, &format!("{l}.attention.k_lin"), d, d)?,
                value: Linear::load(be, ckpt, &format!("{l}.attention.v_lin"), d, d)?,
                attn_out: Linear::load(be, ckpt, &format!("{l}.attention.out_lin"), d, d)?,
                norm1: LayerNorm::load(be, ckpt, &format!("{l}.sa_layer_norm"), d, EPS)?,
                ffn_in: Linear::load(be, ckpt, &format!("{l}.ffn.lin1"), d, ffn)?,
                ffn_out: Linear::load(be, ckpt, &format!("{l}.ffn.lin2"), ffn, d)?,
                norm2: LayerNorm::load(be, ckpt, &format!("{l}.output_layer_norm"), d, EPS)?,
            });
        }
        let encoder = Encoder {
            layers,
            heads: c.n_heads,
            placement: NormPlacement::Post,
        };
        let (pre_classifier, classifier) = match num_labels {
            Some(n) => (
                Some(Linear::load(be, ckpt, "pre_classifier", d, d)?),
                Some(Linear::load(be, ckpt, "classifier", d, n)?),
            ),
            None => (None, None),
        };
        Ok(Self {
            word,
            position,
            emb_norm,
            encoder,
            pre_classifier,
            classifier,
        })
    }

    pub fn embed(&self, be: &B, ids: &[u32], positions: &[u32]) -> Result<B::Tensor> {
        let x = be.add(
            &be.gather_rows(&self.word, ids)?,
            &be.gather_rows(&self.position, positions)?,
        )?;
        self.emb_norm.forward(be, &x)
    }

    pub fn head(&self, be: &B, cls: &B::Tensor) -> Result<Option<B::Tensor>> {
        match (&self.pre_classifier, &self.classifier) {
            (Some(pre), Some(c)) => Ok(Some(c.forward(be, &be.relu(&pre.forward(be, cls)?)?)?)),
            (None, None) => Ok(None),
            _ => Err(EngineError::Compute("DistilBERT head is half loaded".into())),
        }
    }
}
