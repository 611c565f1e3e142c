//! `linear` on the GPU: the tiled matmuls in `matmul_vec4.wgsl` (k a multiple of 4: vec4
//! loads) and `matmul.wgsl` (any k), with the bias and an optional GELU fused into the
//! epilogue.

use super::{compute_err, dims2, WgpuBackend, WgpuTensor};
use crate::engine::backend::Result;

/// Output rows and columns per workgroup (must match `matmul.wgsl`).
const TILE: usize = 64;

/// What the epilogue applies after the bias (`ACT_*` in `gelu.wgsl`).
#[derive(Clone, Copy)]
pub(super) enum Activation {
    None = 0,
    Gelu = 1,
}

pub(super) fn linear(
    be: &WgpuBackend,
    x: &WgpuTensor,
    w: &WgpuTensor,
    b: Option<&WgpuTensor>,
    act: Activation,
    allow_vec4: bool,
) -> Result<WgpuTensor> {
    let (n, k) = dims2("linear input", x)?;
    let (m, kw) = dims2("linear weight", w)?;
    if kw != k {
        return Err(compute_err(format!(
            "linear: input {:?} does not match weight {:?}",
            x.shape, w.shape
        )));
    }
    if let Some(b) = b {
        if b.shape != [m] {
            return Err(compute_err(format!("linear: bias {:?} for {m} outputs", b.shape)));
        }
    }
    let out = be.empty(&[n, m])?;
    if n == 0 || m == 0 {
        return Ok(out);
    }
    let groups = (m.div_ceil(TILE), n.div_ceil(TILE));
    if groups.0 > super::MAX_GROUPS_PER_DIM as usize || groups.1 > super::MAX_GROUPS_PER_DIM as usize {
        return Err(compute_err(format!(
            "linear: [{n}, {k}] × [{m}, {k}]ᵀ is too large"
        )));
    }
    let params = be.uniform([
        n as u32,
        k as u32,
        m as u32,
        b.is_some() as u32,
        act as u32,
        0,
        0,
        0,
    ]);
    let bias = b.map(|b| &**b.buf).unwrap_or(&be.dummy);
    let kernel = if allow_vec4 && k % 4 == 0 {
        &be.kernels.linear_vec4
    } else {
        &be.kernels.linear
    };
    be.dispatch(
        kernel,
        &[(0, &x.buf), (1, &w.buf), (2, bias), (3, &out.buf), (4, &params)],
        (groups.0 as u32, groups.1 as u32),
    );
    Ok(out)
}
