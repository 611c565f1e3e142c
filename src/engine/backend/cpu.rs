//! The CPU backend on candle (native SIMD, wasm SIMD128 in the browser).
//!
//! The hot ops (linear, attention, LayerNorm, GELU) run on our own kernels instead of
//! candle's multi-pass ones: on wasm32 the SIMD128 kernels in [`simd`], on x86-64 with
//! AVX2 + FMA those in [`avx2`] (linear layers on weights packed once at load).
//! Elsewhere natively, candle's ops. The `*_simd` and `*_avx2` methods are public so that tests run each path
//! natively against candle.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
pub mod par;
pub mod simd;
pub mod team;

/// What this build's CPU path is, for the status line: the browser has two worker builds
/// (index.html), the second with relaxed SIMD's fused multiply-add in [`simd`].
pub const KERNELS: &str = if !cfg!(target_arch = "wasm32") {
    "native SIMD"
} else if cfg!(feature = "relaxed-simd") {
    "wasm SIMD + FMA"
} else {
    "wasm SIMD"
};

/// How many threads the kernels share out to ([`par`]): set by the threaded worker once its
/// helpers run; 1 everywhere else.
static THREADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);

pub fn set_threads(n: usize) {
    THREADS.store(n.max(1), std::sync::atomic::Ordering::Relaxed);
}

/// [`KERNELS`] with the thread count where there is more than one, e.g.
/// "wasm SIMD + FMA, 2 threads".
pub fn kernels() -> String {
    let k = selected_kernels();
    match THREADS.load(std::sync::atomic::Ordering::Relaxed) {
        1 => k.to_string(),
        n => format!("{k}, {n} threads"),
    }
}

/// [`KERNELS`], or natively on x86-64 which kernels this CPU gets ([`avx2`]).
fn selected_kernels() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if avx2::packs_linear() {
            return match avx2::Tile::best() {
                avx2::Tile::Avx512 => "native AVX-512 products, AVX2 + FMA elsewhere",
                avx2::Tile::Avx2 => "native AVX2 + FMA",
            };
        }
        if avx2::available() {
            return "native gemm linear, AVX2 + FMA attention";
        }
    }
    KERNELS
}

use candle_core::{CpuStorage, DType, Device, Layout, Storage, Tensor, D};

use super::train_ops::{check_labels, AdamWConfig, TrainOps};
use super::{widened, AttentionShape, Backend, Result};
use crate::engine::EngineError;

fn err(e: candle_core::Error) -> EngineError {
    EngineError::Compute(e.to_string())
}

#[derive(Clone, Debug, Default)]
pub struct CpuBackend;

impl CpuBackend {
    pub fn new() -> Self {
        Self
    }

    /// `linear` (and `linear_gelu` with `gelu`) on [`simd`]'s kernels: the wasm32 path. `w`
    /// is `[out, in]`, or what [`CpuBackend::pack_linear_simd`] made of it.
    pub fn linear_simd(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>, gelu: bool) -> Result<Tensor> {
        let packed = w.rank() == 3;
        let (m, kw) = if packed {
            let (vectors, k, four) = w.dims3().map_err(err)?;
            if four != 4 {
                return Err(EngineError::Compute(format!(
                    "linear: a packed weight {:?}",
                    w.dims()
                )));
            }
            (vectors * 4, k)
        } else {
            w.dims2().map_err(err)?
        };
        self.linear_on(x, w, b, m, kw, |x, w, bias, n, k| {
            let mut y = vec![0f32; n * m];
            let ep = simd::Epilogue {
                col_bias: bias,
                gelu,
                ..simd::Epilogue::NONE
            };
            match w {
                HostWeight::F16(w) => par::matmul_nt_packed(x, k, w, &mut y, m, n, m, k, ep),
                HostWeight::F32(w) if packed => par::matmul_nt_packed(x, k, w, &mut y, m, n, m, k, ep),
                HostWeight::F32(w) => par::matmul_nt(x, k, w, k, &mut y, m, n, m, k, ep),
            }
            Ok(y)
        })
    }

    /// [`CpuBackend::pack_linear_simd`] kept in f16 ([`simd::pack_nt_f16`], an f16 tensor):
    /// half the memory, for a weight the checkpoint stored in f16, so that nothing is
    /// rounded. Where the weight cannot be packed or has a non-finite value, the f32 form.
    /// What `upload_linear_weight_f16` does on wasm32; public for tests.
    pub fn pack_linear_simd_f16(&self, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        match *shape {
            [out, inp]
                if simd::packs_nt(out, inp)
                    && data.len() == out * inp
                    && data.iter().all(|x| x.is_finite()) =>
            {
                Tensor::from_vec(simd::pack_nt_f16(data, out, inp), (out / 4, inp, 4), &Device::Cpu)
                    .map_err(err)
            }
            _ => self.pack_linear_simd(data, shape),
        }
    }

    /// A linear weight `[out, in]` reordered for [`simd::matmul_nt_packed`] (as an
    /// `[out / 4, in, 4]` tensor that only `linear` reads) where [`simd::packs_nt`]
    /// allows, else as it is. What `upload_linear_weight` does on wasm32; public for tests.
    pub fn pack_linear_simd(&self, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        match *shape {
            [out, inp] if simd::packs_nt(out, inp) && data.len() == out * inp => {
                Tensor::from_vec(simd::pack_nt(data, out, inp), (out / 4, inp, 4), &Device::Cpu).map_err(err)
            }
            _ => self.upload(data, shape),
        }
    }

    /// `linear` (and `linear_gelu`) on a weight that `upload_linear_weight` packed for
    /// [`avx2`]'s kernel (a `[out / NR, in, NR]` tensor).
    #[cfg(target_arch = "x86_64")]
    fn linear_avx2(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>, gelu: bool) -> Result<Tensor> {
        let (panels, kw, nr) = w.dims3().map_err(err)?;
        if nr != avx2::NR {
            return Err(EngineError::Compute(format!(
                "linear: a packed weight {:?}",
                w.dims()
            )));
        }
        let m = panels * nr;
        self.linear_on(x, w, b, m, kw, |x, w, bias, n, k| match w {
            HostWeight::F32(w) => Ok(avx2::linear_with(avx2::Tile::best(), x, n, k, w, m, bias, gelu)),
            HostWeight::F16(_) => Err(EngineError::Compute(
                "linear: an f16 weight on the AVX2 path".to_string(),
            )),
        })
    }

    /// Checks `x [n, k] · w [m, kw]ᵀ + bias` and hands `kernel` the host slices of `x`, `w`
    /// (in whatever layout it was stored) and the bias, with `n` and `k`.
    fn linear_on(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        m: usize,
        kw: usize,
        kernel: impl FnOnce(&[f32], HostWeight, Option<&[f32]>, usize, usize) -> Result<Vec<f32>>,
    ) -> Result<Tensor> {
        let (n, k) = x.dims2().map_err(err)?;
        if kw != k || b.is_some_and(|b| b.elem_count() != m) {
            return Err(EngineError::Compute(format!(
                "linear: x [{n}, {k}] · w [{m}, {kw}]ᵀ + bias {:?}",
                b.map(|b| b.dims().to_vec())
            )));
        }
        let (x, w, b) = (contiguous(x)?, contiguous(w)?, b.map(contiguous).transpose()?);
        let (xs, xl) = x.storage_and_layout();
        let (ws, wl) = w.storage_and_layout();
        let bs = b.as_ref().map(|b| b.storage_and_layout());
        let bias = match &bs {
            Some((s, l)) => Some(host(s, l)?),
            None => None,
        };
        let y = kernel(host(&xs, xl)?, host_weight(&ws, wl)?, bias, n, k)?;
        Tensor::from_vec(y, (n, m), &Device::Cpu).map_err(err)
    }

    /// `gelu` on [`simd`]'s vectorised erf: the wasm32 path.
    pub fn gelu_simd(&self, x: &Tensor) -> Result<Tensor> {
        let mut y = self.download(x)?;
        par::gelu_inplace(&mut y);
        Tensor::from_vec(y, x.dims(), &Device::Cpu).map_err(err)
    }

    /// `layer_norm` in one pass per row: the wasm32 path.
    pub fn layer_norm_simd(&self, x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<Tensor> {
        self.layer_norm_on(x, gamma, beta, eps, par::layer_norm)
    }

    /// `layer_norm` on [`avx2`]'s kernel: the native path on x86-64 with AVX2 + FMA.
    #[cfg(target_arch = "x86_64")]
    pub fn layer_norm_avx2(&self, x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<Tensor> {
        self.layer_norm_on(x, gamma, beta, eps, avx2::layer_norm)
    }

    fn layer_norm_on(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        eps: f64,
        kernel: HostLayerNorm,
    ) -> Result<Tensor> {
        let d = x.dims().last().copied().unwrap_or(0);
        if d == 0 || gamma.elem_count() != d || beta.elem_count() != d {
            return Err(EngineError::Compute(format!(
                "layer_norm: gamma {:?} / beta {:?} for {:?}",
                gamma.dims(),
                beta.dims(),
                x.dims()
            )));
        }
        let (x, gamma, beta) = (contiguous(x)?, contiguous(gamma)?, contiguous(beta)?);
        let (xs, xl) = x.storage_and_layout();
        let (gs, gl) = gamma.storage_and_layout();
        let (bs, bl) = beta.storage_and_layout();
        let mut y = vec![0f32; x.elem_count()];
        kernel(
            host(&xs, xl)?,
            &mut y,
            d,
            host(&gs, gl)?,
            host(&bs, bl)?,
            eps as f32,
        );
        Tensor::from_vec(y, x.dims(), &Device::Cpu).map_err(err)
    }

    /// `attention` on [`simd`]'s kernels, heads read and written in place (no split/merge
    /// copies): the wasm32 path.
    pub fn attention_simd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        shape: AttentionShape,
        key_mask: &[f32],
        want_probs: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        self.attention_on(q, k, v, shape, key_mask, want_probs, par::attention)
    }

    /// `attention` on [`avx2`]'s kernel: the native path on x86-64 with AVX2 + FMA.
    #[cfg(target_arch = "x86_64")]
    pub fn attention_avx2(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        shape: AttentionShape,
        key_mask: &[f32],
        want_probs: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        self.attention_on(q, k, v, shape, key_mask, want_probs, avx2::attention)
    }

    /// Checks the shapes, builds the key bias and runs `kernel` on the host slices.
    #[allow(clippy::too_many_arguments)]
    fn attention_on(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        shape: AttentionShape,
        key_mask: &[f32],
        want_probs: bool,
        kernel: HostAttention,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let AttentionShape { batch, seq, heads } = shape;
        let (rows, d) = q.dims2().map_err(err)?;
        if rows != batch * seq
            || key_mask.len() != rows
            || heads == 0
            || d % heads != 0
            || k.dims() != q.dims()
            || v.dims() != q.dims()
        {
            return Err(EngineError::Compute(format!(
                "attention: q {:?}, k {:?}, v {:?}, mask {} for {batch}×{seq} tokens, {heads} heads",
                q.dims(),
                k.dims(),
                v.dims(),
                key_mask.len()
            )));
        }
        // Masked keys get the most negative float, as PyTorch's eager attention does.
        let bias: Vec<f32> = key_mask
            .iter()
            .map(|&m| if m > 0.5 { 0.0 } else { f32::MIN })
            .collect();
        let mut probs = want_probs.then(|| vec![0f32; batch * heads * seq * seq]);
        let (q, k, v) = (contiguous(q)?, contiguous(k)?, contiguous(v)?);
        let (qs, ql) = q.storage_and_layout();
        let (ks, kl) = k.storage_and_layout();
        let (vs, vl) = v.storage_and_layout();
        let ctx = kernel(
            host(&qs, ql)?,
            host(&ks, kl)?,
            host(&vs, vl)?,
            batch,
            seq,
            heads,
            &bias,
            probs.as_deref_mut(),
        );
        let ctx = Tensor::from_vec(ctx, (rows, d), &Device::Cpu).map_err(err)?;
        let probs = match probs {
            Some(p) => Some(Tensor::from_vec(p, (batch, heads, seq, seq), &Device::Cpu).map_err(err)?),
            None => None,
        };
        Ok((ctx, probs))
    }
}

/// A LayerNorm kernel on host slices: `(x, y, d, gamma, beta, eps)`.
type HostLayerNorm = fn(&[f32], &mut [f32], usize, &[f32], &[f32], f32);

/// An attention kernel on host slices: `simd`'s (through `par`) or `avx2`'s.
type HostAttention = fn(&[f32], &[f32], &[f32], usize, usize, usize, &[f32], Option<&mut [f32]>) -> Vec<f32>;

/// `t` itself when contiguous (a cheap clone), else a contiguous copy.
fn contiguous(t: &Tensor) -> Result<Tensor> {
    t.contiguous().map_err(err)
}

/// The row-major f32 data of a contiguous CPU tensor.
fn host<'a>(storage: &'a Storage, layout: &Layout) -> Result<&'a [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (Storage::Cpu(CpuStorage::F32(data)), Some((start, end))) => Ok(&data[start..end]),
        _ => Err(EngineError::Compute(format!(
            "expected a contiguous f32 CPU tensor, got {:?}",
            storage.dtype()
        ))),
    }
}

/// Rows `ids` of an f16 table `[rows, d]`, widened to f32.
fn gather_rows_f16(table: &Tensor, ids: &[u32]) -> Result<Tensor> {
    let (rows, d) = table.dims2().map_err(err)?;
    let table = contiguous(table)?;
    let (storage, layout) = table.storage_and_layout();
    let HostWeight::F16(data) = host_weight(&storage, layout)? else {
        return Err(EngineError::Compute("gather_rows: not an f16 table".to_string()));
    };
    let mut out = vec![0f32; ids.len() * d];
    for (row, &id) in out.chunks_exact_mut(d.max(1)).zip(ids) {
        let id = id as usize;
        if id >= rows {
            return Err(EngineError::Compute(format!(
                "gather_rows: id {id} out of range for {rows} rows"
            )));
        }
        simd::widen_f16(&data[id * d..(id + 1) * d], row);
    }
    Tensor::from_vec(out, (ids.len(), d), &Device::Cpu).map_err(err)
}

/// A linear weight's data as stored: f32, or f16 ([`CpuBackend::pack_linear_simd_f16`]).
enum HostWeight<'a> {
    F32(&'a [f32]),
    F16(&'a [half::f16]),
}

fn host_weight<'a>(storage: &'a Storage, layout: &Layout) -> Result<HostWeight<'a>> {
    match (storage, layout.contiguous_offsets()) {
        (Storage::Cpu(CpuStorage::F16(data)), Some((start, end))) => Ok(HostWeight::F16(&data[start..end])),
        _ => host(storage, layout).map(HostWeight::F32),
    }
}

/// The wasm build takes [`simd`]'s kernels; native x86-64 builds [`avx2`]'s where the CPU
/// has AVX2 + FMA, candle's elsewhere.
const USE_SIMD: bool = cfg!(target_arch = "wasm32");

impl Backend for CpuBackend {
    type Tensor = Tensor;

    fn name(&self) -> String {
        if cfg!(target_arch = "wasm32") {
            format!("CPU ({})", kernels())
        } else {
            "CPU".to_string()
        }
    }

    fn upload(&self, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        Tensor::from_slice(data, shape, &Device::Cpu).map_err(err)
    }

    /// Natively the weight is stored transposed, `[in, out]` contiguous, and handed out as
    /// its transpose (a strided `[out, in]` view): `x · wᵀ` then multiplies by a contiguous
    /// matrix, which `gemm` reads in place instead of packing all of it on every call (at a
    /// few tokens that packing cost as much as the product). On wasm32 the weight is reordered
    /// into panels for [`simd`]'s outer-product kernel ([`CpuBackend::pack_linear_simd`]).
    ///
    /// On x86-64 CPUs with AVX2 + FMA the weight is instead packed for [`avx2`]'s kernel, as
    /// a `[out / NR, in, NR]` tensor that only `linear` reads.
    fn upload_linear_weight(&self, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        if USE_SIMD {
            return self.pack_linear_simd(data, shape);
        }
        if shape.len() != 2 {
            return self.upload(data, shape);
        }
        let (out, inp) = (shape[0], shape[1]);
        if data.len() != out * inp {
            return self.upload(data, shape);
        }
        #[cfg(target_arch = "x86_64")]
        if avx2::packs(out, inp) {
            return Tensor::from_vec(
                avx2::pack(data, out, inp),
                (out / avx2::NR, inp, avx2::NR),
                &Device::Cpu,
            )
            .map_err(err);
        }
        // In 32 × 32 blocks, so both sides stay in cache.
        let mut t = vec![0f32; data.len()];
        const B: usize = 32;
        for o0 in (0..out).step_by(B) {
            for i0 in (0..inp).step_by(B) {
                for o in o0..(o0 + B).min(out) {
                    for i in i0..(i0 + B).min(inp) {
                        t[i * out + o] = data[o * inp + i];
                    }
                }
            }
        }
        Tensor::from_vec(t, (inp, out), &Device::Cpu)
            .and_then(|t| t.t())
            .map_err(err)
    }

    /// On wasm32, kept in f16 ([`CpuBackend::pack_linear_simd_f16`]): an f16 checkpoint then
    /// takes half the memory of an f32 one, with the same results as widening it at load.
    /// Natively, as `upload_linear_weight`.
    fn upload_linear_weight_f16(&self, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        if USE_SIMD {
            return self.pack_linear_simd_f16(data, shape);
        }
        self.upload_linear_weight(data, shape)
    }

    fn download(&self, t: &Tensor) -> Result<Vec<f32>> {
        t.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(err)
    }

    fn shape(&self, t: &Tensor) -> Vec<usize> {
        t.dims().to_vec()
    }

    fn linear(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
        if USE_SIMD {
            return self.linear_simd(x, w, b, false);
        }
        #[cfg(target_arch = "x86_64")]
        if w.rank() == 3 {
            return self.linear_avx2(x, w, b, false);
        }
        let y = x.matmul(&w.t().map_err(err)?).map_err(err)?;
        match b {
            Some(b) => y.broadcast_add(b).map_err(err),
            None => Ok(y),
        }
    }

    fn linear_gelu(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
        if USE_SIMD {
            return self.linear_simd(x, w, b, true);
        }
        #[cfg(target_arch = "x86_64")]
        if w.rank() == 3 {
            return self.linear_avx2(x, w, b, true);
        }
        self.gelu(&self.linear(x, w, b)?)
    }

    fn gelu(&self, x: &Tensor) -> Result<Tensor> {
        if USE_SIMD {
            return self.gelu_simd(x);
        }
        x.gelu_erf().map_err(err)
    }

    fn tanh(&self, x: &Tensor) -> Result<Tensor> {
        x.tanh().map_err(err)
    }

    fn relu(&self, x: &Tensor) -> Result<Tensor> {
        x.relu().map_err(err)
    }

    fn add(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        a.add(b).map_err(err)
    }

    fn layer_norm(&self, x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<Tensor> {
        if USE_SIMD {
            return self.layer_norm_simd(x, gamma, beta, eps);
        }
        #[cfg(target_arch = "x86_64")]
        if avx2::available() {
            return self.layer_norm_avx2(x, gamma, beta, eps);
        }
        let f = || -> candle_core::Result<Tensor> {
            let mean = x.mean_keepdim(D::Minus1)?;
            let centered = x.broadcast_sub(&mean)?;
            let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
            let normed = centered.broadcast_div(&(var + eps)?.sqrt()?)?;
            normed.broadcast_mul(gamma)?.broadcast_add(beta)
        };
        f().map_err(err)
    }

    fn concat_rows(&self, parts: &[&Tensor]) -> Result<Tensor> {
        Tensor::cat(parts, 0).map_err(err)
    }

    fn gather_rows(&self, table: &Tensor, ids: &[u32]) -> Result<Tensor> {
        if table.dtype() == DType::F16 {
            return gather_rows_f16(table, ids);
        }
        let ids = Tensor::from_slice(ids, ids.len(), &Device::Cpu).map_err(err)?;
        table.index_select(&ids, 0).map_err(err)
    }

    /// On wasm32, kept in f16 (an f16 tensor that [`Backend::gather_rows`] widens row by
    /// row): BERT's word embeddings are its largest tensor. Natively, as `upload`.
    fn upload_table_f16(&self, data: Vec<half::f16>, shape: &[usize]) -> Result<Tensor> {
        if USE_SIMD && data.iter().all(|x| x.is_finite()) {
            return Tensor::from_vec(data, shape, &Device::Cpu).map_err(err);
        }
        self.upload(&widened(&data), shape)
    }

    fn attention(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        shape: AttentionShape,
        key_mask: &[f32],
        want_probs: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        if USE_SIMD {
            return self.attention_simd(q, k, v, shape, key_mask, want_probs);
        }
        #[cfg(target_arch = "x86_64")]
        if avx2::available() {
            return self.attention_avx2(q, k, v, shape, key_mask, want_probs);
        }
        let AttentionShape { batch, seq, heads } = shape;
        let f = || -> candle_core::Result<(Tensor, Option<Tensor>)> {
            let d = q.dim(1)?;
            let hd = d / heads;
            let split = |t: &Tensor| t.reshape((batch, seq, heads, hd))?.transpose(1, 2)?.contiguous();
            let (q, k, v) = (split(q)?, split(k)?, split(v)?);
            let scale = 1.0 / (hd as f64).sqrt();
            let scores = (q.matmul(&k.t()?)? * scale)?;
            // Masked keys get the most negative float, as PyTorch's eager attention does.
            let bias: Vec<f32> = key_mask
                .iter()
                .map(|&m| if m > 0.5 { 0.0 } else { f32::MIN })
                .collect();
            let bias = Tensor::from_vec(bias, (batch, 1, 1, seq), &Device::Cpu)?;
            let scores = scores.broadcast_add(&bias)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((batch * seq, d))?;
            Ok((ctx, want_probs.then_some(probs)))
        };
        let (ctx, probs) = f().map_err(err)?;
        debug_assert_eq!(ctx.dtype(), DType::F32);
        Ok((ctx, probs))
    }
}

impl TrainOps for CpuBackend {
    fn matmul(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        a.matmul(b).map_err(err)
    }

    fn matmul_tn(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        a.t().and_then(|at| at.matmul(b)).map_err(err)
    }

    fn sum_rows(&self, x: &Tensor) -> Result<Tensor> {
        x.sum(0).map_err(err)
    }

    fn softmax_xent(&self, logits: &Tensor, labels: &[u32]) -> Result<(Tensor, Tensor)> {
        let (n, c) = logits.dims2().map_err(err)?;
        check_labels(n, c, labels)?;
        let f = || -> candle_core::Result<(Tensor, Tensor)> {
            let shifted = logits.broadcast_sub(&logits.max_keepdim(1)?)?;
            let e = shifted.exp()?;
            let sum = e.sum_keepdim(1)?;
            let log_probs = shifted.broadcast_sub(&sum.log()?)?;
            let idx = Tensor::from_slice(labels, (n, 1), &Device::Cpu)?;
            let loss = (log_probs.gather(&idx, 1)?.sum_all()?.neg()? / n as f64)?.reshape(1)?;
            let mut onehot = vec![0f32; n * c];
            for (row, &l) in labels.iter().enumerate() {
                onehot[row * c + l as usize] = 1.0;
            }
            let onehot = Tensor::from_vec(onehot, (n, c), &Device::Cpu)?;
            let dlogits = (e.broadcast_div(&sum)?.sub(&onehot)? / n as f64)?;
            Ok((loss, dlogits))
        };
        f().map_err(err)
    }

    fn relu_backward(&self, dy: &Tensor, y: &Tensor) -> Result<Tensor> {
        let f = || y.gt(0f32)?.where_cond(dy, &dy.zeros_like()?);
        f().map_err(err)
    }

    fn adamw(
        &self,
        param: &Tensor,
        grad: &Tensor,
        m: &Tensor,
        v: &Tensor,
        step: u64,
        config: &AdamWConfig,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let shape = param.dims();
        for (what, t) in [("gradient", grad), ("m", m), ("v", v)] {
            if t.dims() != shape {
                return Err(EngineError::Compute(format!(
                    "adamw: {what} {:?} for a parameter {shape:?}",
                    t.dims()
                )));
            }
        }
        let s = config.scalars(step)?;
        // A plain loop over the host data: the update is element-wise, and this keeps the
        // exact operation order of PyTorch's single-tensor AdamW (see `AdamWStep::apply`).
        let (p, g, m, v) = (
            self.download(param)?,
            self.download(grad)?,
            self.download(m)?,
            self.download(v)?,
        );
        let mut out = (
            Vec::with_capacity(p.len()),
            Vec::with_capacity(p.len()),
            Vec::with_capacity(p.len()),
        );
        for i in 0..p.len() {
            let (pi, mi, vi) = s.apply(p[i], g[i], m[i], v[i]);
            out.0.push(pi);
            out.1.push(mi);
            out.2.push(vi);
        }
        Ok((
            self.upload(&out.0, shape)?,
            self.upload(&out.1, shape)?,
            self.upload(&out.2, shape)?,
        ))
    }
}
