//! Head training on the GPU: [`TrainOps`] with the kernels in `train.wgsl`.

use wgpu::util::DeviceExt;

use super::{compute_err, dims2, grid, groups_for, same_shape, WgpuBackend, WgpuTensor, MAX_GROUPS_PER_DIM};
use crate::engine::backend::train_ops::{check_labels, AdamWConfig, TrainOps};
use crate::engine::backend::{Backend, Result};

/// Output rows and columns per matmul workgroup (must match `train.wgsl`).
const TILE: usize = 64;
/// Columns per `sum_rows` workgroup (must match `train.wgsl`).
const SUM_COLS: usize = 16;

fn zeros(be: &WgpuBackend, shape: &[usize]) -> Result<WgpuTensor> {
    be.upload(&vec![0.0; shape.iter().product()], shape)
}

fn words(w: &[u32]) -> [u32; 8] {
    let mut out = [0; 8];
    out[..w.len()].copy_from_slice(w);
    out
}

/// `out [n, m] = Σ_t A(i, t) · B(t, j)` with A and B addressed through strides
/// `(sai, sat)` and `(sbt, sbj)`.
#[allow(clippy::too_many_arguments)]
fn strided_matmul(
    be: &WgpuBackend,
    what: &str,
    a: &WgpuTensor,
    b: &WgpuTensor,
    (n, k, m): (usize, usize, usize),
    (sai, sat): (usize, usize),
    (sbt, sbj): (usize, usize),
) -> Result<WgpuTensor> {
    let out = be.empty(&[n, m])?;
    if n == 0 || m == 0 {
        return Ok(out);
    }
    if k == 0 {
        // Nothing to sum: zeros (the kernel would leave the buffer unwritten otherwise).
        return zeros(be, &[n, m]);
    }
    let groups = (m.div_ceil(TILE), n.div_ceil(TILE));
    if groups.0 > MAX_GROUPS_PER_DIM as usize || groups.1 > MAX_GROUPS_PER_DIM as usize {
        return Err(compute_err(format!(
            "{what}: an output of [{n}, {m}] is too large"
        )));
    }
    let u = |v: usize| v as u32;
    let params = be.uniform(words(&[u(n), u(k), u(m), u(sai), u(sat), u(sbt), u(sbj)]));
    be.dispatch(
        &be.kernels.train_matmul,
        &[(0, &a.buf), (1, &b.buf), (5, &out.buf), (8, &params)],
        (groups.0 as u32, groups.1 as u32),
    );
    Ok(out)
}

impl TrainOps for WgpuBackend {
    fn matmul(&self, a: &WgpuTensor, b: &WgpuTensor) -> Result<WgpuTensor> {
        let (n, k) = dims2("matmul a", a)?;
        let (kb, m) = dims2("matmul b", b)?;
        if kb != k {
            return Err(compute_err(format!("matmul: {:?} · {:?}", a.shape, b.shape)));
        }
        strided_matmul(self, "matmul", a, b, (n, k, m), (k, 1), (m, 1))
    }

    fn matmul_tn(&self, a: &WgpuTensor, b: &WgpuTensor) -> Result<WgpuTensor> {
        let (n, k) = dims2("matmul_tn a", a)?;
        let (nb, m) = dims2("matmul_tn b", b)?;
        if nb != n {
            return Err(compute_err(format!("matmul_tn: {:?}ᵀ · {:?}", a.shape, b.shape)));
        }
        // out [k, m]: A(i, t) = a[t, i], summed over the n rows.
        strided_matmul(self, "matmul_tn", a, b, (k, n, m), (1, k), (m, 1))
    }

    fn sum_rows(&self, x: &WgpuTensor) -> Result<WgpuTensor> {
        let (n, m) = dims2("sum_rows", x)?;
        if n == 0 {
            return zeros(self, &[m]);
        }
        let out = self.empty(&[m])?;
        if m == 0 {
            return Ok(out);
        }
        let params = self.uniform(words(&[n as u32, m as u32]));
        self.dispatch(
            &self.kernels.train_sum_rows,
            &[(0, &x.buf), (5, &out.buf), (8, &params)],
            grid(m.div_ceil(SUM_COLS)),
        );
        Ok(out)
    }

    fn softmax_xent(&self, logits: &WgpuTensor, labels: &[u32]) -> Result<(WgpuTensor, WgpuTensor)> {
        let (n, c) = dims2("softmax_xent", logits)?;
        check_labels(n, c, labels)?;
        let labels_buf = self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("labels"),
            contents: bytemuck::cast_slice(labels),
            usage: wgpu::BufferUsages::STORAGE,
        });
        let dlogits = self.empty(&[n, c])?;
        let row_loss = self.empty(&[n])?;
        let params = self.uniform(words(&[n as u32, c as u32]));
        self.dispatch(
            &self.kernels.train_xent_rows,
            &[
                (0, &logits.buf),
                (4, &labels_buf),
                (5, &dlogits.buf),
                (6, &row_loss.buf),
                (8, &params),
            ],
            grid(n),
        );
        let loss = self.empty(&[1])?;
        self.dispatch(
            &self.kernels.train_xent_mean,
            &[(0, &row_loss.buf), (5, &loss.buf), (8, &params)],
            (1, 1),
        );
        Ok((loss, dlogits))
    }

    fn relu_backward(&self, dy: &WgpuTensor, y: &WgpuTensor) -> Result<WgpuTensor> {
        same_shape("relu_backward", dy, y)?;
        let n = dy.len();
        let out = self.empty(&dy.shape)?;
        if n == 0 {
            return Ok(out);
        }
        let params = self.uniform(words(&[n as u32]));
        self.dispatch(
            &self.kernels.train_relu_backward,
            &[(0, &dy.buf), (1, &y.buf), (5, &out.buf), (8, &params)],
            groups_for(n),
        );
        Ok(out)
    }

    fn adamw(
        &self,
        param: &WgpuTensor,
        grad: &WgpuTensor,
        m: &WgpuTensor,
        v: &WgpuTensor,
        step: u64,
        config: &AdamWConfig,
    ) -> Result<(WgpuTensor, WgpuTensor, WgpuTensor)> {
        same_shape("adamw gradient", param, grad)?;
        same_shape("adamw m", param, m)?;
        same_shape("adamw v", param, v)?;
        let s = config.scalars(step)?;
        let n = param.len();
        let (p2, m2, v2) = (
            self.empty(&param.shape)?,
            self.empty(&param.shape)?,
            self.empty(&param.shape)?,
        );
        if n == 0 {
            return Ok((p2, m2, v2));
        }
        let params = self.uniform([
            n as u32,
            s.decay.to_bits(),
            s.one_minus_beta1.to_bits(),
            s.beta2.to_bits(),
            s.one_minus_beta2.to_bits(),
            s.bias_correction2_sqrt.to_bits(),
            s.eps.to_bits(),
            s.neg_step_size.to_bits(),
        ]);
        self.dispatch(
            &self.kernels.train_adamw,
            &[
                (0, &param.buf),
                (1, &grad.buf),
                (2, &m.buf),
                (3, &v.buf),
                (5, &p2.buf),
                (6, &m2.buf),
                (7, &v2.buf),
                (8, &params),
            ],
            groups_for(n),
        );
        Ok((p2, m2, v2))
    }
}
