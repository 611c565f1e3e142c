//! The compute backend: the dozen ops a transformer encoder needs. The encoder and the
//! models are written once against this trait; `cpu` implements it with candle, and the
//! WebGPU backend (WGSL kernels through wgpu) is the second implementation.
//!
//! Tensors are row-major. Activations are 2-D `[rows, features]` with rows = batch × tokens,
//! which keeps every op a plain matrix op that a GPU kernel can do in one dispatch.

pub mod cpu;
pub mod train_ops;
#[cfg(feature = "webgpu")]
pub mod webgpu;

use std::future::Future;

use super::EngineError;

pub use train_ops::{AdamWConfig, TrainOps};

/// f16 values as f32 (exact), for backends that keep a table in f32.
pub fn widened(data: &[half::f16]) -> Vec<f32> {
    data.iter().map(|h| h.to_f32()).collect()
}

pub type Result<T> = std::result::Result<T, EngineError>;

/// Shape of one attention call: `batch` sequences of `seq` tokens, `heads` heads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
}

pub trait Backend {
    type Tensor: Clone;

    /// Human-readable name for status lines and errors.
    fn name(&self) -> String;
    /// Copies host data (row-major) to the backend.
    fn upload(&self, data: &[f32], shape: &[usize]) -> Result<Self::Tensor>;
    /// Uploads a linear layer's weight `[out, in]`, as checkpoints store it. A backend may
    /// keep it in another layout behind the same logical shape, for its matmul's sake.
    fn upload_linear_weight(&self, data: &[f32], shape: &[usize]) -> Result<Self::Tensor> {
        self.upload(data, shape)
    }
    /// [`Backend::upload_linear_weight`] for a weight the checkpoint stored in f16 (`data`
    /// holds exactly f16 values): a backend may keep it in f16, half the memory, with the
    /// same results.
    fn upload_linear_weight_f16(&self, data: &[f32], shape: &[usize]) -> Result<Self::Tensor> {
        self.upload_linear_weight(data, shape)
    }
    /// [`Backend::upload`] for a lookup table (read only by [`Backend::gather_rows`]) that
    /// the checkpoint stored in f16: a backend may keep it so, half the memory, with the
    /// same results. By default it is widened to f32.
    fn upload_table_f16(&self, data: Vec<half::f16>, shape: &[usize]) -> Result<Self::Tensor> {
        self.upload(&widened(&data), shape)
    }
    /// Copies a tensor back to the host, row-major. Blocks until it is computed, so the
    /// browser's WebGPU (which cannot block) uses [`Backend::download_all_async`].
    fn download(&self, t: &Self::Tensor) -> Result<Vec<f32>>;
    /// Copies several tensors back, waiting once for all of them.
    fn download_all(&self, ts: &[&Self::Tensor]) -> Result<Vec<Vec<f32>>> {
        ts.iter().map(|t| self.download(t)).collect()
    }
    /// [`Backend::download_all`] without blocking: what the browser needs.
    fn download_all_async(&self, ts: &[&Self::Tensor]) -> impl Future<Output = Result<Vec<Vec<f32>>>> {
        std::future::ready(self.download_all(ts))
    }
    fn shape(&self, t: &Self::Tensor) -> Vec<usize>;

    /// `x [n, in] · wᵀ + b`, with `w [out, in]` as checkpoints store it.
    fn linear(&self, x: &Self::Tensor, w: &Self::Tensor, b: Option<&Self::Tensor>) -> Result<Self::Tensor>;
    /// `gelu(linear(x, w, b))`: the FFN's up-projection. A backend overrides it to fuse the
    /// activation into the matmul (one pass over the output instead of two).
    fn linear_gelu(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        b: Option<&Self::Tensor>,
    ) -> Result<Self::Tensor> {
        self.gelu(&self.linear(x, w, b)?)
    }
    /// GELU, erf form (what BERT and ViT use; the tanh approximation differs by ~1e-3).
    fn gelu(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    fn tanh(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    fn relu(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// Element-wise sum of two tensors of the same shape.
    fn add(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    /// LayerNorm over the last dimension (biased variance, as PyTorch).
    fn layer_norm(
        &self,
        x: &Self::Tensor,
        gamma: &Self::Tensor,
        beta: &Self::Tensor,
        eps: f64,
    ) -> Result<Self::Tensor>;
    /// Stacks 2-D tensors with the same number of columns, one under the other.
    fn concat_rows(&self, parts: &[&Self::Tensor]) -> Result<Self::Tensor>;
    /// Rows of `table [vocab, d]` picked by `ids`: `[ids.len(), d]`.
    fn gather_rows(&self, table: &Self::Tensor, ids: &[u32]) -> Result<Self::Tensor>;
    /// Scaled dot-product attention over `[batch × seq, heads × head_dim]` projections.
    /// `key_mask` has one entry per row (1 = real token, 0 = padding); padded keys get
    /// zero probability. Returns the context `[batch × seq, heads × head_dim]` and, when
    /// asked, the probabilities `[batch, heads, seq, seq]`.
    fn attention(
        &self,
        q: &Self::Tensor,
        k: &Self::Tensor,
        v: &Self::Tensor,
        shape: AttentionShape,
        key_mask: &[f32],
        want_probs: bool,
    ) -> Result<(Self::Tensor, Option<Self::Tensor>)>;
}
