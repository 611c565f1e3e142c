//! [`simd`]'s kernels split over rayon's pool, through [`team`]'s helpers that stay awake
//! between kernels.
//!
//! In the browser's threaded worker build (a cross-origin isolated page) the pool is the
//! worker's own thread plus helper Web Workers sharing the wasm memory (`worker::threads`);
//! in the single-thread builds `rayon::current_num_threads()` is 1 and every call goes
//! straight to [`simd`]. The splits never change how one output element is summed, so the
//! threaded results equal the single-thread ones bit for bit (`tests/cpu_threads.rs`).

use std::sync::OnceLock;

use super::simd::{self, Epilogue};
use super::team;

/// Each task's result, set once by whichever thread ran it.
fn results<T>(tasks: usize) -> Vec<OnceLock<T>> {
    (0..tasks).map(|_| OnceLock::new()).collect()
}

/// Disjoint `len`-float chunks of one buffer, one per task, handed out by index.
struct Chunks {
    ptr: *mut f32,
    total: usize,
    len: usize,
}
// SAFETY: each task takes a different chunk (`get` with its own index), so no two threads
// touch the same floats.
unsafe impl Sync for Chunks {}

impl Chunks {
    fn new(buf: &mut [f32], len: usize) -> Self {
        Chunks {
            ptr: buf.as_mut_ptr(),
            total: buf.len(),
            len,
        }
    }
    /// # Safety
    /// Each `i` is taken by one task only, while the buffer lives.
    #[allow(clippy::mut_from_ref)]
    unsafe fn get(&self, i: usize) -> &mut [f32] {
        let start = (i * self.len).min(self.total);
        let end = (start + self.len).min(self.total);
        std::slice::from_raw_parts_mut(self.ptr.add(start), end - start)
    }
}

/// Multiply-adds below which a thread's share is not worth waking a helper for (a wake-up
/// costs tens of µs; this is ~10 µs of kernel time).
const MIN_WORK_PER_THREAD: usize = 1 << 18;

/// Column blocks per thread in [`matmul_nt`], and their least width.
const BLOCKS_PER_THREAD: usize = 4;
const MIN_BLOCK_COLUMNS: usize = 32;

/// How many threads `work` multiply-adds deserve (public for the tests that check a split happens).
pub fn threads_for(work: usize) -> usize {
    rayon::current_num_threads()
        .min(work / MIN_WORK_PER_THREAD)
        .max(1)
}

/// [`simd::matmul_nt`] with the output's columns (rows of `b`, the weight) dealt out in
/// blocks: each thread streams only its part of the weight, which at a few tokens is what
/// the time goes on. Each block is written in place into its columns of `c`.
#[allow(clippy::too_many_arguments)]
pub fn matmul_nt(
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
    n: usize,
    m: usize,
    k: usize,
    ep: Epilogue,
) {
    // SAFETY (of each call): by_column_blocks hands each block its own columns of `c`.
    let block = |j0: usize, out: *mut f32, cols: usize, ep: Epilogue| unsafe {
        simd::matmul_nt_to(a, lda, &b[j0 * ldb..], ldb, out, ldc, n, cols, k, ep)
    };
    let threads = threads_for(n * m * k);
    if threads <= 1 {
        return simd::matmul_nt(a, lda, b, ldb, c, ldc, n, m, k, ep);
    }
    by_column_blocks(threads, c, ldc, n, m, 4, ep, &block);
}

/// [`simd::matmul_nt_packed`] (f32 or f16 weights) split as [`matmul_nt`]: a block of
/// whole panels of the packed weight is one contiguous slice, at the same offset as in the
/// row-major one.
#[allow(clippy::too_many_arguments)]
pub fn matmul_nt_packed<T: simd::Packed>(
    a: &[f32],
    lda: usize,
    b: &[T],
    c: &mut [f32],
    ldc: usize,
    n: usize,
    m: usize,
    k: usize,
    ep: Epilogue,
) {
    // SAFETY (of each call): by_column_blocks hands each block its own columns of `c`.
    let block = |j0: usize, out: *mut f32, cols: usize, ep: Epilogue| unsafe {
        simd::matmul_nt_packed_to(a, lda, &b[j0 * k..], out, ldc, n, cols, k, ep)
    };
    let threads = threads_for(n * m * k);
    if threads <= 1 {
        return simd::matmul_nt_packed(a, lda, b, c, ldc, n, m, k, ep);
    }
    by_column_blocks(threads, c, ldc, n, m, simd::PANEL, ep, &block);
}

/// Computes columns `j0..j0 + cols` of a product into its `n` rows at `out` (the output's
/// column `j0`, rows `ldc` apart): `(j0, out, cols, ep)`.
type ColumnBlock<'a> = dyn Fn(usize, *mut f32, usize, Epilogue) + Sync + 'a;

/// The output every block writes its own columns of.
struct SharedOut(*mut f32);
// SAFETY: by_column_blocks gives each task a disjoint set of columns.
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// The output's column `j` (a method: a closure using `.0` would capture the bare,
    /// non-`Sync` pointer).
    fn column(&self, j: usize) -> *mut f32 {
        self.0.wrapping_add(j)
    }
}

/// Deals the columns `0..m` of `c [n, m]` out to `block` in blocks of whole micro-tiles
/// (multiples of `granule` columns: 4, or a packed weight's panel), so every element is
/// summed as unsplit, for `threads` threads (the caller's [`threads_for`], more than one).
#[allow(clippy::too_many_arguments)]
fn by_column_blocks(
    threads: usize,
    c: &mut [f32],
    ldc: usize,
    n: usize,
    m: usize,
    granule: usize,
    ep: Epilogue,
    block: &ColumnBlock,
) {
    assert!(
        ldc >= m && c.len() >= (n - 1) * ldc + m,
        "matmul_nt: c is too short"
    );
    // A few blocks per thread, so a thread that started late (a helper waking up) takes
    // fewer.
    let count = (threads * BLOCKS_PER_THREAD)
        .min(m.div_ceil(MIN_BLOCK_COLUMNS))
        .max(threads);
    let width = m.div_ceil(count).div_ceil(granule) * granule;
    let out = SharedOut(c.as_mut_ptr());
    team::run(m.div_ceil(width), &|blk| {
        let j0 = blk * width;
        let cols = width.min(m - j0);
        let ep = ep.from_column(j0);
        // In bounds by the assert above; no other block writes columns j0..j0 + cols.
        block(j0, out.column(j0), cols, ep);
    });
}

/// [`simd::layer_norm`] over blocks of rows.
pub fn layer_norm(x: &[f32], y: &mut [f32], d: usize, gamma: &[f32], beta: &[f32], eps: f32) {
    let threads = threads_for(x.len() * 4);
    if threads <= 1 || d == 0 {
        return simd::layer_norm(x, y, d, gamma, beta, eps);
    }
    let rows = (x.len() / d).div_ceil(threads);
    assert_eq!(x.len(), y.len(), "layer_norm: x and y differ in length");
    let ys = Chunks::new(y, rows * d);
    team::run(x.len().div_ceil(rows * d), &|i| {
        let x = &x[i * rows * d..((i + 1) * rows * d).min(x.len())];
        // SAFETY: task i alone takes chunk i.
        simd::layer_norm(x, unsafe { ys.get(i) }, d, gamma, beta, eps)
    });
}

/// [`simd::gelu_inplace`] over blocks.
pub fn gelu_inplace(xs: &mut [f32]) {
    // The erf polynomial is ~30 operations an element.
    let threads = threads_for(xs.len() * 32);
    if threads <= 1 {
        return simd::gelu_inplace(xs);
    }
    let len = xs.len().div_ceil(threads).div_ceil(4) * 4;
    let tasks = xs.len().div_ceil(len);
    let chunks = Chunks::new(xs, len);
    // SAFETY: task i alone takes chunk i.
    team::run(tasks, &|i| simd::gelu_inplace(unsafe { chunks.get(i) }));
}

/// [`simd::attention`] with the (sequence, head) pairs side by side: each pair computes its
/// context into its own buffer, copied into the merged layout after.
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
    let d = q.len() / (batch * seq).max(1);
    let threads = threads_for(batch * seq * seq * d * 2);
    if threads <= 1 || batch * heads < 2 {
        return simd::attention(q, k, v, batch, seq, heads, key_bias, probs);
    }
    let hd = d / heads;
    assert!(hd * heads == d && q.len() == batch * seq * d && k.len() == q.len() && v.len() == q.len());
    assert!(key_bias.len() == batch * seq);
    let scale = (1.0 / (hd as f64).sqrt()) as f32;
    let head = |bh: usize, s: &mut [f32]| {
        let (b, h) = (bh / heads, bh % heads);
        let mut out = vec![0f32; seq * hd];
        let off = b * seq * d + h * hd;
        let bias = &key_bias[b * seq..(b + 1) * seq];
        simd::attention_head(q, k, v, d, hd, seq, off, bias, scale, s, &mut out, hd);
        out
    };
    let outs = results::<Vec<f32>>(batch * heads);
    match probs {
        Some(p) => {
            assert!(
                p.len() == batch * heads * seq * seq,
                "attention: probs has the wrong size"
            );
            let ps = Chunks::new(p, seq * seq);
            // SAFETY: task bh alone takes chunk bh.
            team::run(outs.len(), &|bh| {
                let _ = outs[bh].set(head(bh, unsafe { ps.get(bh) }));
            });
        }
        None => team::run(outs.len(), &|bh| {
            let _ = outs[bh].set(head(bh, &mut vec![0f32; seq * seq]));
        }),
    }
    let mut ctx = vec![0f32; q.len()];
    for (bh, out) in outs.into_iter().enumerate() {
        let out = out.into_inner().expect("team::run ran every head");
        let (b, h) = (bh / heads, bh % heads);
        for (t, row) in out.chunks_exact(hd).enumerate() {
            let at = (b * seq + t) * d + h * hd;
            ctx[at..at + hd].copy_from_slice(row);
        }
    }
    ctx
}
