//! GELU, tanh, ReLU and add on the GPU: `elementwise.wgsl`.

use super::{groups_for, same_shape, Kernel, WgpuBackend, WgpuTensor};
use crate::engine::backend::Result;

pub(super) fn unary(be: &WgpuBackend, kernel: &Kernel, x: &WgpuTensor) -> Result<WgpuTensor> {
    let n = x.len();
    let out = be.empty(&x.shape)?;
    if n == 0 {
        return Ok(out);
    }
    let params = be.uniform([n as u32, 0, 0, 0, 0, 0, 0, 0]);
    be.dispatch(kernel, &[(0, &x.buf), (1, &out.buf), (2, &params)], groups_for(n));
    Ok(out)
}

pub(super) fn add(be: &WgpuBackend, a: &WgpuTensor, b: &WgpuTensor) -> Result<WgpuTensor> {
    same_shape("add", a, b)?;
    let n = a.len();
    let out = be.empty(&a.shape)?;
    if n == 0 {
        return Ok(out);
    }
    let params = be.uniform([n as u32, 0, 0, 0, 0, 0, 0, 0]);
    be.dispatch(
        &be.kernels.add,
        &[(0, &a.buf), (1, &out.buf), (2, &params), (3, &b.buf)],
        groups_for(n),
    );
    Ok(out)
}
