//! LayerNorm over the last dimension on the GPU: `layer_norm.wgsl`.

use super::{compute_err, grid, WgpuBackend, WgpuTensor};
use crate::engine::backend::Result;

pub(super) fn layer_norm(
    be: &WgpuBackend,
    x: &WgpuTensor,
    gamma: &WgpuTensor,
    beta: &WgpuTensor,
    eps: f64,
) -> Result<WgpuTensor> {
    let Some(&dim) = x.shape.last() else {
        return Err(compute_err("layer_norm: a 0-D tensor"));
    };
    if gamma.shape != [dim] || beta.shape != [dim] {
        return Err(compute_err(format!(
            "layer_norm: weight {:?} and bias {:?} for rows of {dim}",
            gamma.shape, beta.shape
        )));
    }
    let out = be.empty(&x.shape)?;
    let rows = x.len().checked_div(dim).unwrap_or(0);
    if rows == 0 {
        return Ok(out);
    }
    let params = be.uniform([rows as u32, dim as u32, (eps as f32).to_bits(), 0, 0, 0, 0, 0]);
    be.dispatch(
        &be.kernels.layer_norm,
        &[
            (0, &x.buf),
            (1, &gamma.buf),
            (2, &beta.buf),
            (3, &out.buf),
            (4, &params),
        ],
        grid(rows),
    );
    Ok(out)
}
