//! The few extra ops that training a classification head needs (forward reuses
//! [`Backend::linear`] and [`Backend::relu`]). Written once against this trait, the trainer in
//! [`crate::engine::train`] runs on every backend that implements it.

use super::{Backend, Result};
use crate::engine::EngineError;

/// AdamW hyper-parameters, with `torch.optim.AdamW`'s meaning and defaults. Kept in f64
/// because PyTorch computes the per-step scalars (bias corrections, step size) in Python
/// floats before the f32 element-wise update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// The f32 scalars of one AdamW step, computed in f64 as PyTorch's single-tensor AdamW does,
/// so that every backend applies exactly the same update:
///
/// ```text
/// p  = p · decay                       (decoupled weight decay: 1 − lr·wd)
/// m  = m + (1 − β1)·(g − m)            (lerp)
/// v  = v·β2 + (1 − β2)·g·g
/// p  = p + (−lr / (1 − β1ᵗ))·m / (√v / √(1 − β2ᵗ) + eps)
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWStep {
    pub decay: f32,
    pub one_minus_beta1: f32,
    pub beta2: f32,
    pub one_minus_beta2: f32,
    pub bias_correction2_sqrt: f32,
    pub eps: f32,
    pub neg_step_size: f32,
}

impl AdamWConfig {
    /// The scalars for step `step` (1 for the first update).
    pub fn scalars(&self, step: u64) -> Result<AdamWStep> {
        if step == 0 {
            return Err(EngineError::Input("adamw: steps count from 1".into()));
        }
        let (b1, b2) = self.betas;
        let t = step as f64;
        let bias_correction1 = 1.0 - b1.powf(t);
        let bias_correction2 = 1.0 - b2.powf(t);
        Ok(AdamWStep {
            decay: (1.0 - self.lr * self.weight_decay) as f32,
            one_minus_beta1: (1.0 - b1) as f32,
            beta2: b2 as f32,
            one_minus_beta2: (1.0 - b2) as f32,
            bias_correction2_sqrt: bias_correction2.sqrt() as f32,
            eps: self.eps as f32,
            neg_step_size: (-(self.lr / bias_correction1)) as f32,
        })
    }
}

impl AdamWStep {
    /// One element's update: (param, m, v). The reference the GPU kernel mirrors.
    pub fn apply(&self, p: f32, g: f32, m: f32, v: f32) -> (f32, f32, f32) {
        let p = p * self.decay;
        let m = m + self.one_minus_beta1 * (g - m);
        let v = v * self.beta2 + self.one_minus_beta2 * g * g;
        let denom = v.sqrt() / self.bias_correction2_sqrt + self.eps;
        (p + self.neg_step_size * m / denom, m, v)
    }
}

pub trait TrainOps: Backend {
    /// `a [n, k] · b [k, m]` → `[n, m]` (the gradient flowing back through a linear layer).
    fn matmul(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    /// `aᵀ · b` for `a [n, k]`, `b [n, m]` → `[k, m]` (weight gradients: a sum over rows).
    fn matmul_tn(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    /// Column sums of `[n, m]` → `[m]` (bias gradients).
    fn sum_rows(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// Mean softmax cross-entropy of `logits [n, c]` against `labels` (one per row, < c), as
    /// `torch.nn.functional.cross_entropy`: returns the loss `[1]` and its gradient
    /// `dlogits [n, c] = (softmax − onehot) / n`. Rows are shifted by their max first.
    fn softmax_xent(&self, logits: &Self::Tensor, labels: &[u32]) -> Result<(Self::Tensor, Self::Tensor)>;
    /// `dy` where the ReLU output `y` is positive, else 0.
    fn relu_backward(&self, dy: &Self::Tensor, y: &Self::Tensor) -> Result<Self::Tensor>;
    /// One `torch.optim.AdamW` step (see [`AdamWStep`]) for step number `step` (from 1):
    /// returns the new `(param, m, v)`; the inputs are left as they are.
    fn adamw(
        &self,
        param: &Self::Tensor,
        grad: &Self::Tensor,
        m: &Self::Tensor,
        v: &Self::Tensor,
        step: u64,
        config: &AdamWConfig,
    ) -> Result<(Self::Tensor, Self::Tensor, Self::Tensor)>;
}

/// Shared input checks, so both backends fail the same way on bad labels.
pub(crate) fn check_labels(n: usize, classes: usize, labels: &[u32]) -> Result<()> {
    if labels.len() != n {
        return Err(EngineError::Input(format!(
            "softmax_xent: {} labels for {n} rows",
            labels.len()
        )));
    }
    if n == 0 {
        return Err(EngineError::Input("softmax_xent: no rows".into()));
    }
    if let Some(&bad) = labels.iter().find(|&&l| l as usize >= classes) {
        return Err(EngineError::Input(format!(
            "softmax_xent: label {bad} out of range for {classes} classes"
        )));
    }
    Ok(())
}
