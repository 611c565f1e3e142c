//! The transformer encoder, written once and generic over the compute [`Backend`].
//!
//! Why our own and not candle-transformers' `BertModel`: candle's models compute attention
//! probabilities internally and drop them, and they are tied to candle tensors. The
//! heatmaps need every layer's probabilities, and the WebGPU backend needs the same model
//! code on other tensors. candle-transformers still serves as an independent cross-check of
//! our hidden states in the tests.

use super::backend::{AttentionShape, Backend, Result};
use super::checkpoint::Checkpoint;
use super::EngineError;

/// A dense layer `y = x · wᵀ + b`.
pub struct Linear<B: Backend> {
    pub w: B::Tensor,
    pub b: Option<B::Tensor>,
}

impl<B: Backend> Linear<B> {
    /// Loads `{name}.weight [out, in]` and `{name}.bias [out]`.
    pub fn load(be: &B, ckpt: &mut Checkpoint, name: &str, inp: usize, out: usize) -> Result<Self> {
        let w = ckpt.take(&format!("{name}.weight"), &[out, inp])?;
        let b = ckpt.take(&format!("{name}.bias"), &[out])?;
        let w = if w.f16 {
            be.upload_linear_weight_f16(&w.data, &w.shape)?
        } else {
            be.upload_linear_weight(&w.data, &w.shape)?
        };
        Ok(Self {
            w,
            b: Some(be.upload(&b.data, &b.shape)?),
        })
    }

    pub fn forward(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor> {
        be.linear(x, &self.w, self.b.as_ref())
    }

    /// `gelu(forward(x))`, which a backend may fuse into one kernel.
    pub fn forward_gelu(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor> {
        be.linear_gelu(x, &self.w, self.b.as_ref())
    }
}

/// Loads an embedding table `name [rows, dim]`, read only through `gather_rows`: kept in
/// f16 where the checkpoint stored it so and the backend can ([`Backend::upload_table_f16`]).
pub fn load_table<B: Backend>(
    be: &B,
    ckpt: &mut Checkpoint,
    name: &str,
    rows: usize,
    dim: usize,
) -> Result<B::Tensor> {
    if let Some(halves) = ckpt.take_f16(name, &[rows, dim])? {
        return be.upload_table_f16(halves, &[rows, dim]);
    }
    let t = ckpt.take(name, &[rows, dim])?;
    be.upload(&t.data, &t.shape)
}

pub struct LayerNorm<B: Backend> {
    pub gamma: B::Tensor,
    pub beta: B::Tensor,
    pub eps: f64,
}

impl<B: Backend> LayerNorm<B> {
    pub fn load(be: &B, ckpt: &mut Checkpoint, name: &str, dim: usize, eps: f64) -> Result<Self> {
        let g = ckpt.take(&format!("{name}.weight"), &[dim])?;
        let b = ckpt.take(&format!("{name}.bias"), &[dim])?;
        Ok(Self {
            gamma: be.upload(&g.data, &g.shape)?,
            beta: be.upload(&b.data, &b.shape)?,
            eps,
        })
    }

    pub fn forward(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor> {
        be.layer_norm(x, &self.gamma, &self.beta, self.eps)
    }
}

/// Where LayerNorm sits: after each residual sum (BERT, DistilBERT) or before each
/// sub-block (ViT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormPlacement {
    Post,
    Pre,
}

/// One encoder layer. The checkpoint names differ per model; the maths does not.
pub struct Layer<B: Backend> {
    pub query: Linear<B>,
    pub key: Linear<B>,
    pub value: Linear<B>,
    pub attn_out: Linear<B>,
    /// Post-LN: after attention + residual. Pre-LN: before attention.
    pub norm1: LayerNorm<B>,
    pub ffn_in: Linear<B>,
    pub ffn_out: Linear<B>,
    /// Post-LN: after feed-forward + residual. Pre-LN: before feed-forward.
    pub norm2: LayerNorm<B>,
}

pub struct Encoder<B: Backend> {
    pub layers: Vec<Layer<B>>,
    pub heads: usize,
    pub placement: NormPlacement,
}

/// What a forward pass keeps besides the last hidden state.
#[derive(Clone, Copy, Debug, Default)]
pub struct Want {
    pub attentions: bool,
    pub hidden_states: bool,
}

pub struct EncoderOutput<B: Backend> {
    /// `[batch × seq, hidden]`
    pub last: B::Tensor,
    /// The input and every layer's output, when asked.
    pub hidden_states: Vec<B::Tensor>,
    /// `[batch, heads, seq, seq]` per layer, when asked.
    pub attentions: Vec<B::Tensor>,
}

impl<B: Backend> Encoder<B> {
    /// Runs `x [batch × seq, hidden]` through every layer.
    pub fn forward(
        &self,
        be: &B,
        x: B::Tensor,
        batch: usize,
        seq: usize,
        key_mask: &[f32],
        want: Want,
    ) -> Result<EncoderOutput<B>> {
        if key_mask.len() != batch * seq {
            return Err(EngineError::Compute(format!(
                "mask has {} entries for {batch}×{seq} tokens",
                key_mask.len()
            )));
        }
        let shape = AttentionShape {
            batch,
            seq,
            heads: self.heads,
        };
        let mut hidden_states = Vec::new();
        let mut attentions = Vec::new();
        let mut h = x;
        for layer in &self.layers {
            if want.hidden_states {
                hidden_states.push(h.clone());
            }
            let (next, probs) = layer.forward(be, &h, shape, key_mask, self.placement, want.attentions)?;
            if let Some(p) = probs {
                attentions.push(p);
            }
            h = next;
        }
        if want.hidden_states {
            hidden_states.push(h.clone());
        }
        Ok(EncoderOutput {
            last: h,
            hidden_states,
            attentions,
        })
    }
}

impl<B: Backend> Layer<B> {
    fn self_attention(
        &self,
        be: &B,
        x: &B::Tensor,
        shape: AttentionShape,
        key_mask: &[f32],
        want_probs: bool,
    ) -> Result<(B::Tensor, Option<B::Tensor>)> {
        let q = self.query.forward(be, x)?;
        let k = self.key.forward(be, x)?;
        let v = self.value.forward(be, x)?;
        let (ctx, probs) = be.attention(&q, &k, &v, shape, key_mask, want_probs)?;
        Ok((self.attn_out.forward(be, &ctx)?, probs))
    }

    fn feed_forward(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor> {
        let inner = self.ffn_in.forward_gelu(be, x)?;
        self.ffn_out.forward(be, &inner)
    }

    fn forward(
        &self,
        be: &B,
        x: &B::Tensor,
        shape: AttentionShape,
        key_mask: &[f32],
        placement: NormPlacement,
        want_probs: bool,
    ) -> Result<(B::Tensor, Option<B::Tensor>)> {
        match placement {
            NormPlacement::Post => {
                let (a, probs) = self.self_attention(be, x, shape, key_mask, want_probs)?;
                let h = self.norm1.forward(be, &be.add(x, &a)?)?;
                let f = self.feed_forward(be, &h)?;
                Ok((self.norm2.forward(be, &be.add(&h, &f)?)?, probs))
            }
            NormPlacement::Pre => {
                let (a, probs) =
                    self.self_attention(be, &self.norm1.forward(be, x)?, shape, key_mask, want_probs)?;
                let h = be.add(x, &a)?;
                let f = self.feed_forward(be, &self.norm2.forward(be, &h)?)?;
                Ok((be.add(&h, &f)?, probs))
            }
        }
    }
}
