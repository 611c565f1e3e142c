//! Scaled dot-product attention on the GPU: `attention.wgsl` (scores + softmax, then the
//! probability-weighted sum of the values).

use super::{compute_err, grid, groups_for, same_shape, WgpuBackend, WgpuTensor};
use crate::engine::backend::{AttentionShape, Backend, Result};

pub(super) fn attention(
    be: &WgpuBackend,
    q: &WgpuTensor,
    k: &WgpuTensor,
    v: &WgpuTensor,
    shape: AttentionShape,
    key_mask: &[f32],
    want_probs: bool,
) -> Result<(WgpuTensor, Option<WgpuTensor>)> {
    let AttentionShape { batch, seq, heads } = shape;
    same_shape("attention keys", q, k)?;
    same_shape("attention values", q, v)?;
    let (rows, d) = super::dims2("attention", q)?;
    if rows != batch * seq || heads == 0 || d % heads != 0 {
        return Err(compute_err(format!(
            "attention: projections {:?} for {batch}×{seq} tokens and {heads} heads",
            q.shape
        )));
    }
    if key_mask.len() != rows {
        return Err(compute_err(format!(
            "attention: mask has {} entries for {rows} tokens",
            key_mask.len()
        )));
    }
    let hd = d / heads;
    let ctx = be.empty(&[rows, d])?;
    let probs = be.empty(&[batch, heads, seq, seq])?;
    if rows == 0 || d == 0 {
        return Ok((ctx, want_probs.then_some(probs)));
    }
    let mask = be.upload(key_mask, &[rows])?;
    let scale = (1.0 / (hd as f64).sqrt()) as f32;
    let params = be.uniform([
        batch as u32,
        seq as u32,
        heads as u32,
        hd as u32,
        scale.to_bits(),
        0,
        0,
        0,
    ]);
    be.dispatch(
        &be.kernels.attn_scores,
        &[
            (0, &q.buf),
            (1, &k.buf),
            (2, &mask.buf),
            (3, &probs.buf),
            (4, &params),
        ],
        grid(batch * heads * seq),
    );
    be.dispatch(
        &be.kernels.attn_context,
        &[(4, &params), (5, &probs.buf), (6, &v.buf), (7, &ctx.buf)],
        groups_for(rows * d),
    );
    Ok((ctx, want_probs.then_some(probs)))
}
