//! The CPU backend's native kernels on x86-64 with AVX2 + FMA: linear layers on weights
//! packed once at load (`x · wᵀ + b`, and GELU), attention on the same micro-kernel with a
//! vectorised softmax, and LayerNorm in one pass. On CPUs with AVX-512 the products run a
//! 16-lane micro-tile over the same packed panels ([`Tile`]), with the same results bit for
//! bit. `simd` is the wasm counterpart.
//!
//! Why not candle's `gemm` here: it makes the output column-major, so the weight becomes
//! its left operand and is read either packed afresh on every call or in place with a
//! stride of a whole weight row per step of `k` (one cache line and nearly one page per
//! step: TLB misses). A weight is reused every forward pass, so we pack it once, in the
//! exact order this kernel reads it: for each block of `KC` inputs, for each panel of `NR`
//! outputs, `kc` steps of `NR` contiguous floats. A forward pass then streams every weight
//! front to back exactly once per block of rows (bench/README.md, "Native: weights packed
//! once").
//!
//! Each output is one fused multiply-add chain over `k` in order (the accumulators start
//! from the partial sums of the previous `k` block), then the bias, then GELU. So the result
//! does not depend on the blocking or on how the panels are split between threads.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use rayon::prelude::*;

/// Output columns per panel: two 8-lane vectors.
pub const NR: usize = 16;
/// Rows of `x` per micro-tile: 6 × 2 accumulators + 2 weight vectors + 1 broadcast fit the
/// 16 vector registers.
const MR: usize = 6;
/// Inputs per block: one panel's slice (`KC × NR` floats, 16 KB; two for the AVX-512 pair)
/// stays in L1 while every row tile of the block passes over it.
const KC: usize = 256;
/// Rows per block at most: `MC × KC` floats of `x` (196 KB) stay in L2 while the weights
/// stream; rounded down to whole tiles.
const MC: usize = 196;
/// Rows per micro-tile of the AVX-512 tiles, which have 32 registers: the pair
/// ([`tile512x2`], two panels side by side) holds 14 × 2 accumulators + 2 weight vectors +
/// 1 broadcast, and makes 28 FMAs per step of `k` for 16 loads. (One panel at a time, 12 FMAs
/// for 13 loads, ran at ~75% of `gemm`'s speed: the loads, not the FMAs, were the limit.)
const MR512: usize = 14;
/// Bytes of output a row block may cover, across the panels a thread computes (a share of
/// L2): the partial sums of every `k` block are read back from there, not from memory.
const Y_BLOCK_BYTES: usize = 1 << 20;
/// Rows per thread from which threads split the rows rather than the panels.
const ROWS_PER_THREAD: usize = 64;
/// Multiply-adds below which a second thread is not worth waking.
const MIN_WORK_PER_THREAD: usize = 1 << 20;

/// Whether this CPU runs the kernel (checked once; every x86-64 CPU since 2013-2015).
pub fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

/// The micro-tile that runs over the packed panels. Both compute each output as the same
/// chain of fused multiply-adds over `k` in order, and share the epilogue, so their results
/// are equal bit for bit; AVX-512 does twice the work per instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tile {
    /// 6 rows × two 8-lane vectors.
    Avx2,
    /// 14 rows × two panels of 16 lanes (one panel where the last is alone or partial).
    Avx512,
}

impl Tile {
    /// AVX-512 where the CPU has AVX-512F, unless `WEBFORMER_AVX512=0` (for A/B benchmarks).
    pub fn best() -> Tile {
        static BEST: std::sync::OnceLock<Tile> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| {
            if Tile::Avx512.available() && std::env::var("WEBFORMER_AVX512").as_deref() != Ok("0") {
                Tile::Avx512
            } else {
                Tile::Avx2
            }
        })
    }

    /// Whether this CPU runs this tile.
    pub fn available(self) -> bool {
        match self {
            Tile::Avx2 => available(),
            Tile::Avx512 => available() && is_x86_feature_detected!("avx512f"),
        }
    }

    fn rows(self) -> usize {
        match self {
            Tile::Avx2 => MR,
            Tile::Avx512 => MR512,
        }
    }
}

/// Whether linear layers use the packed kernel: wherever AVX2 + FMA are, with its AVX-512
/// tiles where the CPU has them ([`Tile::best`]). `gemm`'s AVX-512 kernels on transposed
/// weights ran at 1.0-1.8× PyTorch's time; this kernel at 0.3-1.2× on AVX2 and AVX-512 CPUs
/// (bench/README.md). `WEBFORMER_LINEAR=gemm` selects `gemm` instead, for A/B benchmarks.
/// Attention and LayerNorm take these kernels wherever AVX2 + FMA are ([`available`]).
pub fn packs_linear() -> bool {
    static CHOSEN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *CHOSEN.get_or_init(|| available() && std::env::var("WEBFORMER_LINEAR").as_deref() != Ok("gemm"))
}

/// Whether `upload_linear_weight` packs a weight `[out, inp]`: `out` must fill whole panels.
pub fn packs(out: usize, inp: usize) -> bool {
    packs_linear() && out.is_multiple_of(NR) && out > 0 && inp > 0
}

/// Packs `w [out, inp]` (row-major, as checkpoints store it) in the order the kernel reads
/// it: `out` rounded up to whole panels (zero columns) × `inp`.
pub fn pack(w: &[f32], out: usize, inp: usize) -> Vec<f32> {
    assert!(
        w.len() == out * inp,
        "pack: {} floats for [{out}, {inp}]",
        w.len()
    );
    pack_strided(w, out, inp, inp, 1)
}

/// [`pack`] for an `out × inp` matrix whose element `(o, i)` is `w[o * rs + i * cs]`: a
/// head's slice of keys (`rs` = the row width) or values (read transposed) in attention.
pub fn pack_strided(w: &[f32], out: usize, inp: usize, rs: usize, cs: usize) -> Vec<f32> {
    assert!(
        out == 0 || inp == 0 || (out - 1) * rs + (inp - 1) * cs < w.len(),
        "pack: [{out}, {inp}] beyond {} floats",
        w.len()
    );
    let panels = out.div_ceil(NR);
    let mut packed = vec![0f32; panels * NR * inp];
    let mut dst = 0;
    for k0 in (0..inp).step_by(KC) {
        let kc = KC.min(inp - k0);
        for p in 0..panels {
            let cols = NR.min(out - p * NR);
            for kk in k0..k0 + kc {
                for j in 0..cols {
                    packed[dst + j] = w[(p * NR + j) * rs + kk * cs];
                }
                dst += NR;
            }
        }
    }
    packed
}

/// What is applied to each sum `s` before it is stored: `gelu(s · scale + bias[column])`.
#[derive(Clone, Copy)]
pub struct Epilogue<'a> {
    pub scale: f32,
    pub bias: Option<&'a [f32]>,
    pub gelu: bool,
}

impl Epilogue<'_> {
    pub const NONE: Epilogue<'static> = Epilogue {
        scale: 1.0,
        bias: None,
        gelu: false,
    };
}

/// `y [n, out] = x [n, inp] · wᵀ + bias`, then GELU where `gelu`, with `w` as [`pack`] left
/// it, on the micro-tile `tile` (the engine passes [`Tile::best`]; tests compare the two);
/// the output's columns are dealt out to rayon's threads in whole panels.
#[allow(clippy::too_many_arguments)]
pub fn linear_with(
    tile: Tile,
    x: &[f32],
    n: usize,
    inp: usize,
    packed: &[f32],
    out: usize,
    bias: Option<&[f32]>,
    gelu: bool,
) -> Vec<f32> {
    assert!(tile.available(), "this CPU lacks the {tile:?} tile");
    assert!(
        x.len() == n * inp && inp > 0,
        "linear: x of {} floats for [{n}, {inp}]",
        x.len()
    );
    // Not zeroed: every element is written (the first block of `k` stores without reading),
    // and zeroing a batch's 12 MB output cost ~3% of a forward pass.
    let mut y: Vec<f32> = Vec::with_capacity(n * out);
    let ep = Epilogue {
        scale: 1.0,
        bias,
        gelu,
    };
    let panels = out.div_ceil(NR);
    let threads = rayon::current_num_threads()
        .min(n * out * inp / MIN_WORK_PER_THREAD)
        .clamp(1, panels.max(1));
    check(x, inp, n, inp, packed, out, n * out, out, ep);
    let yp = SendPtr(y.spare_capacity_mut().as_mut_ptr().cast());
    if threads <= 1 {
        // SAFETY: checked above; one thread.
        unsafe { run(tile, x, inp, n, inp, packed, out, yp, out, ep, 0..panels) };
    } else if n >= threads * ROWS_PER_THREAD {
        // Enough rows for a full block each: rows are split, so each thread copies only its
        // own rows of `x` (the weights, read-only, are shared in L3).
        let per = n.div_ceil(threads).next_multiple_of(tile.rows());
        (0..threads).into_par_iter().for_each(|t| {
            let rows = (t * per).min(n)..((t + 1) * per).min(n);
            let xs = &x[rows.start * inp..rows.end * inp];
            // SAFETY: checked above; each thread writes only its own rows of y.
            let ys = SendPtr(unsafe { yp.ptr().add(rows.start * out) });
            unsafe {
                run(
                    tile,
                    xs,
                    inp,
                    rows.len(),
                    inp,
                    packed,
                    out,
                    ys,
                    out,
                    ep,
                    0..panels,
                )
            };
        });
    } else {
        // Whole pairs of panels per thread where the AVX-512 tile pairs them.
        let per = match tile {
            Tile::Avx512 => panels.div_ceil(threads).next_multiple_of(2),
            Tile::Avx2 => panels.div_ceil(threads),
        };
        (0..threads).into_par_iter().for_each(|t| {
            let ps = (t * per).min(panels)..((t + 1) * per).min(panels);
            // SAFETY: checked above; each thread writes only its own panels' columns of y.
            unsafe { run(tile, x, inp, n, inp, packed, out, yp, out, ep, ps) };
        });
    }
    // SAFETY: `run` wrote all n × out elements: every row of every panel, as inp > 0.
    unsafe { y.set_len(n * out) };
    y
}

/// `y[i, j] = epilogue(Σ_p x[i, p] · w[j, p])` for `i < n`, `j < out`, `p < inp`, with `w` as
/// [`pack`] / [`pack_strided`] left it; `x` and `y` have row strides `lda` and `ldy`. One thread.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    x: &[f32],
    lda: usize,
    n: usize,
    inp: usize,
    packed: &[f32],
    out: usize,
    y: &mut [f32],
    ldy: usize,
    ep: Epilogue,
) {
    // SAFETY: y is y.len() floats, all ours.
    unsafe { matmul_raw(x, lda, n, inp, packed, out, y.as_mut_ptr(), y.len(), ldy, ep) }
}

/// [`matmul`] into `y_len` floats at `y`, which other threads may be writing elsewhere.
///
/// # Safety
/// `y..y + y_len` is valid for writes, and no other thread touches the elements written.
#[allow(clippy::too_many_arguments)]
unsafe fn matmul_raw(
    x: &[f32],
    lda: usize,
    n: usize,
    inp: usize,
    packed: &[f32],
    out: usize,
    y: *mut f32,
    y_len: usize,
    ldy: usize,
    ep: Epilogue,
) {
    check(x, lda, n, inp, packed, out, y_len, ldy, ep);
    run(
        Tile::best(),
        x,
        lda,
        n,
        inp,
        packed,
        out,
        SendPtr(y),
        ldy,
        ep,
        0..out.div_ceil(NR),
    )
}

#[allow(clippy::too_many_arguments)]
fn check(
    x: &[f32],
    lda: usize,
    n: usize,
    inp: usize,
    packed: &[f32],
    out: usize,
    y_len: usize,
    ldy: usize,
    ep: Epilogue,
) {
    assert!(available(), "the packed kernel needs AVX2 and FMA");
    assert!(
        lda >= inp && ldy >= out,
        "matmul: row strides {lda} / {ldy} for [{n}, {inp}] → [{n}, {out}]"
    );
    assert!(
        n == 0 || ((n - 1) * lda + inp <= x.len() && (n - 1) * ldy + out <= y_len),
        "matmul: x or y too short"
    );
    assert_eq!(
        packed.len(),
        out.div_ceil(NR) * NR * inp,
        "matmul: packed weight for [{out}, {inp}]"
    );
    assert!(
        ep.bias.is_none_or(|b| b.len() >= out),
        "matmul: bias shorter than {out}"
    );
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: the threads write disjoint columns (see `linear_with`).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// Through a method, so closures capture the `SendPtr` and not its raw field.
    fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// The output columns of `panels`, all rows.
///
/// # Safety
/// The shapes passed [`check`]; no other thread writes these panels' columns of `y`.
#[allow(clippy::too_many_arguments)]
unsafe fn run(
    tile: Tile,
    x: &[f32],
    lda: usize,
    n: usize,
    inp: usize,
    packed: &[f32],
    out: usize,
    y: SendPtr,
    ldy: usize,
    ep: Epilogue,
    panels: std::ops::Range<usize>,
) {
    let width = out.div_ceil(NR) * NR;
    let mr = tile.rows();
    // Rows per block: few enough that the block's outputs (all of this call's panels) stay
    // in L2 while every block of `k` adds to them, so partial sums never go out to memory.
    let block_rows = ((Y_BLOCK_BYTES / (4 * NR * panels.len().max(1))).min(MC) / mr * mr).max(mr);
    let mut rows_packed = Vec::with_capacity(block_rows.min(n) * KC);
    for i0 in (0..n).step_by(block_rows) {
        for k0 in (0..inp).step_by(KC) {
            let mc = block_rows.min(n - i0);
            let kc = KC.min(inp - k0);
            let last = k0 + kc == inp;
            let block = &packed[k0 * width..(k0 + kc) * width];
            pack_rows(&mut rows_packed, x, lda, i0..i0 + mc, k0..k0 + kc);
            let bias_of = |p: usize| {
                let mut bias = [0f32; NR];
                if let Some(b) = ep.bias {
                    let cols = NR.min(out - p * NR);
                    bias[..cols].copy_from_slice(&b[p * NR..p * NR + cols]);
                }
                bias
            };
            let mut p = panels.start;
            while p < panels.end {
                // Two panels side by side where both are whole (AVX-512 only): each value
                // of `x` is loaded once for 32 outputs.
                let pair = tile == Tile::Avx512 && p + 1 < panels.end && out >= (p + 2) * NR;
                let (bias0, bias1) = (bias_of(p), if pair { bias_of(p + 1) } else { [0f32; NR] });
                let tail_of = |q: usize| Tail {
                    first: k0 == 0,
                    last,
                    scale: ep.scale,
                    bias: None,
                    gelu: ep.gelu,
                    cols: NR.min(out - q * NR),
                };
                let t0 = Tail {
                    bias: ep.bias.map(|_| &bias0),
                    ..tail_of(p)
                };
                let t1 = Tail {
                    bias: ep.bias.map(|_| &bias1),
                    ..tail_of(if pair { p + 1 } else { p })
                };
                let b = block[p * kc * NR..].as_ptr();
                let b1 = if pair {
                    block[(p + 1) * kc * NR..].as_ptr()
                } else {
                    b
                };
                let mut i = 0;
                while i < mc {
                    let rows = mr.min(mc - i);
                    let a = rows_packed.as_ptr().add(i * KC);
                    let c = y.0.add((i0 + i) * ldy + p * NR);
                    // The next tile's outputs, which it reads first (after the first block
                    // of `k`), on their way to L1 while this tile computes.
                    if i + rows < mc {
                        let next = rows.min(mc - i - rows);
                        for r in 0..next {
                            let q = c.add((rows + r) * ldy) as *const i8;
                            _mm_prefetch::<_MM_HINT_T0>(q);
                            _mm_prefetch::<_MM_HINT_T0>(q.add(63));
                            if pair {
                                _mm_prefetch::<_MM_HINT_T0>(q.add(127));
                            }
                        }
                    }
                    let t = &t0;
                    if pair {
                        match rows {
                            14 => tile512x2::<14>(kc, a, b, b1, c, ldy, t, &t1),
                            13 => tile512x2::<13>(kc, a, b, b1, c, ldy, t, &t1),
                            12 => tile512x2::<12>(kc, a, b, b1, c, ldy, t, &t1),
                            11 => tile512x2::<11>(kc, a, b, b1, c, ldy, t, &t1),
                            10 => tile512x2::<10>(kc, a, b, b1, c, ldy, t, &t1),
                            9 => tile512x2::<9>(kc, a, b, b1, c, ldy, t, &t1),
                            8 => tile512x2::<8>(kc, a, b, b1, c, ldy, t, &t1),
                            7 => tile512x2::<7>(kc, a, b, b1, c, ldy, t, &t1),
                            6 => tile512x2::<6>(kc, a, b, b1, c, ldy, t, &t1),
                            5 => tile512x2::<5>(kc, a, b, b1, c, ldy, t, &t1),
                            4 => tile512x2::<4>(kc, a, b, b1, c, ldy, t, &t1),
                            3 => tile512x2::<3>(kc, a, b, b1, c, ldy, t, &t1),
                            2 => tile512x2::<2>(kc, a, b, b1, c, ldy, t, &t1),
                            _ => tile512x2::<1>(kc, a, b, b1, c, ldy, t, &t1),
                        }
                        i += rows;
                        continue;
                    }
                    match (tile, rows) {
                        (Tile::Avx2, 6) => tile256::<6>(kc, a, b, c, ldy, t),
                        (Tile::Avx2, 5) => tile256::<5>(kc, a, b, c, ldy, t),
                        (Tile::Avx2, 4) => tile256::<4>(kc, a, b, c, ldy, t),
                        (Tile::Avx2, 3) => tile256::<3>(kc, a, b, c, ldy, t),
                        (Tile::Avx2, 2) => tile256::<2>(kc, a, b, c, ldy, t),
                        (Tile::Avx2, _) => tile256::<1>(kc, a, b, c, ldy, t),
                        (Tile::Avx512, 14) => tile512::<14>(kc, a, b, c, ldy, t),
                        (Tile::Avx512, 13) => tile512::<13>(kc, a, b, c, ldy, t),
                        (Tile::Avx512, 12) => tile512::<12>(kc, a, b, c, ldy, t),
                        (Tile::Avx512, 11) => tile512::<11>(kc, a, b, c, ldy, t),
                        (Tile::Avx512, 10) => tile512::<10>(kc, a, b, c, ldy, t),
                        (Tile::Avx512, 9) => tile512::<9>(kc, a, b, c, ldy, t),
                        (Tile::Avx512, 8) => tile512::<8>(kc, a, b, c, ldy, t),
                        (Tile::Avx512, 7) => tile512::<7>(kc, a, b, c, ldy, t),
                        (Tile::Avx512, 6) => tile512::<6>(kc, a, b, c, ldy, t),
                        (Tile::Avx512, 5) => tile512::<5>(kc, a, b, c, ldy, t),
                        (Tile::Avx512, 4) => tile512::<4>(kc, a, b, c, ldy, t),
                        (Tile::Avx512, 3) => tile512::<3>(kc, a, b, c, ldy, t),
                        (Tile::Avx512, 2) => tile512::<2>(kc, a, b, c, ldy, t),
                        (Tile::Avx512, _) => tile512::<1>(kc, a, b, c, ldy, t),
                    }
                    i += rows;
                }
                p += if pair { 2 } else { 1 };
            }
        }
    }
}

/// Copies `x[rows, ks]` (row stride `lda`) into `buf` with a row stride of `KC`: a tile
/// then reads its rows at constant offsets from one pointer (no index registers in the
/// inner loop) and a few KB apart, instead of `lda` apart (which, for a 3072-wide `x`, puts
/// every row in the same L1 set). Row by row, so the copy streams at memory speed.
fn pack_rows(
    buf: &mut Vec<f32>,
    x: &[f32],
    lda: usize,
    rows: std::ops::Range<usize>,
    ks: std::ops::Range<usize>,
) {
    let kc = ks.len();
    assert!(kc <= KC);
    let len = rows.len() * KC;
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    for (i, dst) in rows.zip(buf.chunks_exact_mut(KC)) {
        dst[..kc].copy_from_slice(&x[i * lda + ks.start..i * lda + ks.end]);
    }
}

/// What a tile does around its products: start from the partial sums in `c` unless `first`;
/// on the `last` block of `k`, scale, add the bias and apply GELU. Only the first `cols`
/// columns of `c` exist (the last panel may be partial).
struct Tail<'a> {
    first: bool,
    last: bool,
    scale: f32,
    bias: Option<&'a [f32; NR]>,
    gelu: bool,
    cols: usize,
}

/// `R` rows × `NR` columns of the output over `kc` inputs.
///
/// # Safety
/// AVX2 and FMA are present; `a` has `R` rows of `kc` floats at stride `KC` ([`pack_rows`]);
/// `b` has `kc × NR` floats; `c` has `R` rows of `tail.cols` floats at stride `ldc`.
#[target_feature(enable = "avx2,fma")]
unsafe fn tile256<const R: usize>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    tail: &Tail,
) {
    let full = tail.cols == NR;
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    if !tail.first {
        for (r, row) in acc.iter_mut().enumerate() {
            let mut buf = [0f32; NR];
            let src = if full {
                c.add(r * ldc) as *const f32
            } else {
                std::ptr::copy_nonoverlapping(c.add(r * ldc), buf.as_mut_ptr(), tail.cols);
                buf.as_ptr()
            };
            row[0] = _mm256_loadu_ps(src);
            row[1] = _mm256_loadu_ps(src.add(8));
        }
    }
    let (mut ap, mut bp) = (a, b);
    for _ in 0..kc {
        let b0 = _mm256_loadu_ps(bp);
        let b1 = _mm256_loadu_ps(bp.add(8));
        for (r, row) in acc.iter_mut().enumerate() {
            let av = _mm256_broadcast_ss(&*ap.add(r * KC));
            row[0] = _mm256_fmadd_ps(av, b0, row[0]);
            row[1] = _mm256_fmadd_ps(av, b1, row[1]);
        }
        ap = ap.add(1);
        bp = bp.add(NR);
    }
    finish(&mut acc, c, ldc, tail);
}

/// [`tile256`] with one 16-lane vector per row: the same sums in the same order, so the
/// same bits; the epilogue runs on the two 8-lane halves of each vector.
///
/// # Safety
/// As [`tile256`], and AVX-512F is present.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn tile512<const R: usize>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    tail: &Tail,
) {
    let mask = lanes(tail.cols);
    let mut acc = [_mm512_setzero_ps(); R];
    if !tail.first {
        for (r, row) in acc.iter_mut().enumerate() {
            *row = _mm512_maskz_loadu_ps(mask, c.add(r * ldc));
        }
    }
    let (mut ap, mut bp) = (a, b);
    for _ in 0..kc {
        let bv = _mm512_loadu_ps(bp);
        for (r, row) in acc.iter_mut().enumerate() {
            *row = _mm512_fmadd_ps(_mm512_set1_ps(*ap.add(r * KC)), bv, *row);
        }
        ap = ap.add(1);
        bp = bp.add(NR);
    }
    finish512(&acc, c, ldc, tail);
}

/// The mask of a panel's first `cols` columns.
fn lanes(cols: usize) -> __mmask16 {
    ((1u32 << cols) - 1) as __mmask16
}

/// [`tile512`] on two whole panels at once (32 columns at `c`, `b0`'s then `b1`'s): each
/// broadcast of `x` feeds two FMAs, so a step of `k` makes 2R FMAs for R + 2 loads.
///
/// # Safety
/// As [`tile512`], with `b1` another panel of `kc × NR` floats and 32 columns at `c`.
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile512x2<const R: usize>(
    kc: usize,
    a: *const f32,
    b0: *const f32,
    b1: *const f32,
    c: *mut f32,
    ldc: usize,
    t0: &Tail,
    t1: &Tail,
) {
    let mut acc0 = [_mm512_setzero_ps(); R];
    let mut acc1 = [_mm512_setzero_ps(); R];
    if !t0.first {
        for r in 0..R {
            acc0[r] = _mm512_loadu_ps(c.add(r * ldc));
            acc1[r] = _mm512_loadu_ps(c.add(r * ldc + NR));
        }
    }
    let (mut ap, mut p0, mut p1) = (a, b0, b1);
    for _ in 0..kc {
        let v0 = _mm512_loadu_ps(p0);
        let v1 = _mm512_loadu_ps(p1);
        for r in 0..R {
            let av = _mm512_set1_ps(*ap.add(r * KC));
            acc0[r] = _mm512_fmadd_ps(av, v0, acc0[r]);
            acc1[r] = _mm512_fmadd_ps(av, v1, acc1[r]);
        }
        ap = ap.add(1);
        p0 = p0.add(NR);
        p1 = p1.add(NR);
    }
    finish512(&acc0, c, ldc, t0);
    finish512(&acc1, c.add(NR), ldc, t1);
}

/// [`finish`] on 16-lane sums: the same operations lane by lane (GELU on the two halves
/// through [`gelu8`]), so the same bits; stores only the first `tail.cols` columns.
///
/// # Safety
/// AVX-512F, AVX2 and FMA are present; `c` has `R` rows of `tail.cols` floats at stride `ldc`.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn finish512<const R: usize>(acc: &[__m512; R], c: *mut f32, ldc: usize, tail: &Tail) {
    let mask = lanes(tail.cols);
    for (r, &sum) in acc.iter().enumerate() {
        let mut v = sum;
        if tail.last {
            if tail.scale != 1.0 {
                v = _mm512_mul_ps(v, _mm512_set1_ps(tail.scale));
            }
            if let Some(bias) = tail.bias {
                v = _mm512_add_ps(v, _mm512_loadu_ps(bias.as_ptr()));
            }
            if tail.gelu {
                let lo = gelu8(_mm512_castps512_ps256(v));
                let hi = gelu8(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v))));
                v = _mm512_castpd_ps(_mm512_insertf64x4::<1>(
                    _mm512_castps_pd(_mm512_castps256_ps512(lo)),
                    _mm256_castps_pd(hi),
                ));
            }
        }
        _mm512_mask_storeu_ps(c.add(r * ldc), mask, v);
    }
}

/// A tile's epilogue ([`Tail`]) and store, on its sums as two 8-lane halves per row.
///
/// # Safety
/// AVX2 and FMA are present; `c` has `R` rows of `tail.cols` floats at stride `ldc`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn finish<const R: usize>(acc: &mut [[__m256; 2]; R], c: *mut f32, ldc: usize, tail: &Tail) {
    let full = tail.cols == NR;
    for (r, row) in acc.iter_mut().enumerate() {
        let mut buf = [0f32; NR];
        for (h, v) in row.iter_mut().enumerate() {
            if tail.last {
                if tail.scale != 1.0 {
                    *v = _mm256_mul_ps(*v, _mm256_set1_ps(tail.scale));
                }
                if let Some(bias) = tail.bias {
                    *v = _mm256_add_ps(*v, _mm256_loadu_ps(bias.as_ptr().add(8 * h)));
                }
                if tail.gelu {
                    *v = gelu8(*v);
                }
            }
            if full {
                _mm256_storeu_ps(c.add(r * ldc + 8 * h), *v);
            } else {
                _mm256_storeu_ps(buf.as_mut_ptr().add(8 * h), *v);
            }
        }
        if !full {
            std::ptr::copy_nonoverlapping(buf.as_ptr(), c.add(r * ldc), tail.cols);
        }
    }
}

/// GELU, erf form, on 8 lanes: the arithmetic of `simd::V4::gelu` (Abramowitz & Stegun
/// 7.1.26 for erf, |error| < 1.5e-7, and the same `exp` polynomial), with fused multiply-adds.
///
/// # Safety
/// AVX2 and FMA are present.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn gelu8(x: __m256) -> __m256 {
    let s = _mm256_set1_ps;
    let u = _mm256_mul_ps(x, s(std::f32::consts::FRAC_1_SQRT_2));
    let sign = _mm256_and_ps(u, s(-0.0));
    let a = _mm256_min_ps(_mm256_andnot_ps(s(-0.0), u), s(4.0));
    let t = _mm256_div_ps(s(1.0), _mm256_fmadd_ps(a, s(0.327_591_1), s(1.0)));
    let mut p = s(1.061_405_4);
    p = _mm256_fmadd_ps(p, t, s(-1.453_152_1));
    p = _mm256_fmadd_ps(p, t, s(1.421_413_8));
    p = _mm256_fmadd_ps(p, t, s(-0.284_496_74));
    p = _mm256_fmadd_ps(p, t, s(0.254_829_6));
    let e = exp8(_mm256_mul_ps(_mm256_sub_ps(_mm256_setzero_ps(), a), a));
    let erf = _mm256_or_ps(_mm256_fnmadd_ps(_mm256_mul_ps(p, t), e, s(1.0)), sign);
    _mm256_mul_ps(_mm256_mul_ps(_mm256_add_ps(erf, s(1.0)), s(0.5)), x)
}

/// `e^x` on 8 lanes for x ≤ 0 (GELU's `e^(-a²)`, softmax's `e^(x - max)`): `simd::V4::exp`'s
/// range reduction and polynomial, and 0 below -86.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn exp8(x: __m256) -> __m256 {
    let s = _mm256_set1_ps;
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
    let under = _mm256_cmp_ps::<_CMP_LT_OQ>(x, s(-86.0));
    let x = _mm256_max_ps(x, s(-86.0));
    let t = _mm256_fmadd_ps(x, s(std::f32::consts::LOG2_E), s(MAGIC));
    let n = _mm256_sub_ps(t, s(MAGIC));
    let r = _mm256_fmadd_ps(n, s(2.121_944_4e-4), _mm256_fnmadd_ps(n, s(0.693_359_4), x));
    let mut p = s(1.987_569_1e-4);
    p = _mm256_fmadd_ps(p, r, s(1.398_199_9e-3));
    p = _mm256_fmadd_ps(p, r, s(8.333_452e-3));
    p = _mm256_fmadd_ps(p, r, s(4.166_579_6e-2));
    p = _mm256_fmadd_ps(p, r, s(1.666_666_5e-1));
    p = _mm256_fmadd_ps(p, r, s(0.5));
    let e = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), s(1.0));
    let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(MAGIC.to_bits() as i32)),
        _mm256_set1_epi32(127),
    ));
    _mm256_andnot_ps(under, _mm256_mul_ps(e, _mm256_castsi256_ps(bits)))
}

/// Scaled dot-product attention on host slices, as `simd::attention` (same layout and
/// masking: `q`, `k`, `v` are `[batch × seq, heads × hd]`, `key_bias` is 0 or `f32::MIN` per
/// key), on this kernel: each head's keys and values are packed (a few KB) and multiplied
/// in place, with the scale and the mask in the epilogue and a vectorised softmax, so there
/// are no head split/merge copies and no separate passes. Heads run on rayon's threads.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    batch: usize,
    seq: usize,
    heads: usize,
    key_bias: &[f32],
    probs: Option<&mut [f32]>,
) -> Vec<f32> {
    let rows = batch * seq;
    let d = q.len() / rows.max(1);
    let hd = d / heads.max(1);
    assert!(heads > 0 && hd * heads == d && q.len() == rows * d && k.len() == q.len() && v.len() == q.len());
    assert!(
        key_bias.len() == rows
            && probs
                .as_ref()
                .is_none_or(|p| p.len() == batch * heads * seq * seq)
    );
    let scale = (1.0 / (hd as f64).sqrt()) as f32;
    let mut ctx = vec![0f32; q.len()];
    let out = SendPtr(ctx.as_mut_ptr());
    let probs = probs.map(|p| SendPtr(p.as_mut_ptr()));
    let job = |j: usize| {
        let (b, h) = (j / heads, j % heads);
        let off = b * seq * d + h * hd;
        let mut scratch = Vec::new();
        let s: &mut [f32] = match probs {
            // SAFETY: job j alone writes probs[j]'s seq × seq block.
            Some(p) => unsafe { std::slice::from_raw_parts_mut(p.ptr().add(j * seq * seq), seq * seq) },
            None => {
                scratch.resize(seq * seq, 0.0);
                &mut scratch
            }
        };
        let kp = pack_strided(&k[off..], seq, hd, d, 1);
        let ep = Epilogue {
            scale,
            bias: Some(&key_bias[b * seq..(b + 1) * seq]),
            gelu: false,
        };
        matmul(&q[off..], d, seq, hd, &kp, seq, s, seq, ep);
        for row in s.chunks_exact_mut(seq) {
            // SAFETY: AVX2 is present (the packed kernel's precondition, checked by `matmul`).
            unsafe { softmax_row(row) };
        }
        let vp = pack_strided(&v[off..], hd, seq, 1, d);
        // SAFETY: ctx[off..] is q.len() - off floats, of which job j alone writes its head's
        // hd columns of its sequence's rows.
        unsafe {
            matmul_raw(
                s,
                seq,
                seq,
                seq,
                &vp,
                hd,
                out.ptr().add(off),
                q.len() - off,
                d,
                Epilogue::NONE,
            )
        };
    };
    let jobs = batch * heads;
    if rayon::current_num_threads() > 1 && jobs > 1 && seq * seq * hd * jobs >= 2 * MIN_WORK_PER_THREAD {
        (0..jobs).into_par_iter().for_each(job);
    } else {
        (0..jobs).for_each(job);
    }
    ctx
}

/// In-place softmax of one row: `e^(x - max) / Σ`, 8 lanes at a time.
///
/// # Safety
/// AVX2 and FMA are present.
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_row(row: &mut [f32]) {
    let n = row.len();
    let n8 = n & !7;
    let p = row.as_mut_ptr();
    let mut mv = _mm256_set1_ps(f32::NEG_INFINITY);
    for i in (0..n8).step_by(8) {
        mv = _mm256_max_ps(mv, _mm256_loadu_ps(p.add(i)));
    }
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), mv);
    let mx = lanes
        .iter()
        .chain(&row[n8..])
        .fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let m = _mm256_set1_ps(mx);
    let mut sum = _mm256_setzero_ps();
    for i in (0..n8).step_by(8) {
        let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(p.add(i)), m));
        _mm256_storeu_ps(p.add(i), e);
        sum = _mm256_add_ps(sum, e);
    }
    _mm256_storeu_ps(lanes.as_mut_ptr(), sum);
    let mut total: f32 = lanes.iter().sum();
    if n8 < n {
        // The last few through the same lanes, padded with -inf (e^-inf = 0).
        let mut t = [f32::NEG_INFINITY; 8];
        t[..n - n8].copy_from_slice(&row[n8..]);
        _mm256_storeu_ps(
            t.as_mut_ptr(),
            exp8(_mm256_sub_ps(_mm256_loadu_ps(t.as_ptr()), m)),
        );
        row[n8..].copy_from_slice(&t[..n - n8]);
        total += t[..n - n8].iter().sum::<f32>();
    }
    let inv = _mm256_set1_ps(total);
    for i in (0..n8).step_by(8) {
        _mm256_storeu_ps(p.add(i), _mm256_div_ps(_mm256_loadu_ps(p.add(i)), inv));
    }
    for x in row[n8..].iter_mut() {
        *x /= total;
    }
}

/// LayerNorm of each `d`-wide row of `x` into `y`: `(x - mean) / √(var + eps) · γ + β` with
/// the biased variance, as PyTorch; mean, then variance of the centred values (two passes
/// over a row that is in L1, as candle's ops do), 8 lanes at a time.
pub fn layer_norm(x: &[f32], y: &mut [f32], d: usize, gamma: &[f32], beta: &[f32], eps: f32) {
    assert!(available(), "the AVX2 kernels need AVX2 and FMA");
    assert!(d > 0 && x.len().is_multiple_of(d) && y.len() == x.len() && gamma.len() == d && beta.len() == d);
    let rows = |x: &[f32], y: &mut [f32]| {
        for (xr, yr) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
            // SAFETY: AVX2 and FMA are present (asserted); each row is d long.
            unsafe { layer_norm_row(xr, yr, gamma, beta, eps) };
        }
    };
    // Rows are independent: a batch's (1024 × 768) is split between threads in whole rows.
    let threads = rayon::current_num_threads();
    if threads > 1 && x.len() >= 1 << 16 {
        let chunk = (x.len() / d).div_ceil(threads) * d;
        x.par_chunks(chunk)
            .zip(y.par_chunks_mut(chunk))
            .for_each(|(x, y)| rows(x, y));
    } else {
        rows(x, y);
    }
}

/// # Safety
/// AVX2 and FMA are present; all four slices have the same length.
#[target_feature(enable = "avx2,fma")]
unsafe fn layer_norm_row(x: &[f32], y: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let d = x.len();
    let d8 = d & !7;
    let (xp, yp) = (x.as_ptr(), y.as_mut_ptr());
    let hsum = |v: __m256| {
        let mut l = [0f32; 8];
        _mm256_storeu_ps(l.as_mut_ptr(), v);
        l.iter().sum::<f32>()
    };
    let mut s = _mm256_setzero_ps();
    for i in (0..d8).step_by(8) {
        s = _mm256_add_ps(s, _mm256_loadu_ps(xp.add(i)));
    }
    let mean = (hsum(s) + x[d8..].iter().sum::<f32>()) / d as f32;
    let mv = _mm256_set1_ps(mean);
    let mut s2 = _mm256_setzero_ps();
    for i in (0..d8).step_by(8) {
        let c = _mm256_sub_ps(_mm256_loadu_ps(xp.add(i)), mv);
        s2 = _mm256_fmadd_ps(c, c, s2);
    }
    let var = (hsum(s2) + x[d8..].iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>()) / d as f32;
    let inv = 1.0 / (var + eps).sqrt();
    let iv = _mm256_set1_ps(inv);
    for i in (0..d8).step_by(8) {
        let c = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xp.add(i)), mv), iv);
        let o = _mm256_fmadd_ps(
            c,
            _mm256_loadu_ps(gamma.as_ptr().add(i)),
            _mm256_loadu_ps(beta.as_ptr().add(i)),
        );
        _mm256_storeu_ps(yp.add(i), o);
    }
    for i in d8..d {
        y[i] = (x[i] - mean) * inv * gamma[i] + beta[i];
    }
}
