//! The CPU backend's own f32 kernels for the browser: the matrix products behind
//! `Backend::linear` and attention, plus fused softmax, GELU and LayerNorm.
//!
//! Why: in the wasm worker candle's matmul goes through the `gemm` crate's generic
//! SIMD128 path (packing both operands on every call, small 2-vector tiles), and each
//! element-wise op is a separate pass with a fresh allocation; the scalar `erff`/`expf`
//! of GELU and softmax cost as much again. `bench/browser/profile.mjs` shows the split.
//!
//! One portable implementation of the blocking and the edge tiles, over a thin 4-lane
//! vector type [`V4`]: `core::arch::wasm32` SIMD128 on wasm32, a plain `[f32; 4]` with
//! the same operation order elsewhere, so that `cargo test` (tests/cpu_simd.rs) checks
//! the same code natively against candle on odd shapes. Native builds run `avx2`'s
//! 8-lane kernels instead (or candle's); `CpuBackend` picks these on wasm32 only.
//!
//! A linear's weight `w [out, in]` is reordered once at load ([`pack_nt`]) into panels of
//! 12 output columns stored `[in][12]`, and its micro-kernel takes outer products: 3 rows of
//! `x` broadcast one value at a time against 3 vectors of the panel, 9 accumulators that
//! are the outputs themselves. Attention's products run the same tile ([`matmul_nn`]:
//! `p · v` as it is, `q · kᵀ` on each head's keys transposed). Linears whose width is not
//! whole vectors ([`matmul_nt`]) take dot products of `R` rows of `a` with `C` rows of `b`
//! along `k`, four lanes at a time, and reduce the lanes once at the end.

use std::ops::{Add, Div, Mul, Sub};

use half::f16;

/// Four f32 lanes. All arithmetic goes through these few functions.
#[derive(Clone, Copy)]
pub struct V4(imp::Raw);

#[cfg(target_arch = "wasm32")]
mod imp {
    use core::arch::wasm32::*;
    pub type Raw = v128;

    #[inline(always)]
    pub fn zero() -> Raw {
        f32x4_splat(0.0)
    }
    #[inline(always)]
    pub fn splat(x: f32) -> Raw {
        f32x4_splat(x)
    }
    /// # Safety
    /// `p..p+4` must be readable.
    #[inline(always)]
    pub unsafe fn load(p: *const f32) -> Raw {
        v128_load(p as *const v128)
    }
    /// # Safety
    /// `p..p+4` must be writable.
    #[inline(always)]
    pub unsafe fn store(p: *mut f32, v: Raw) {
        v128_store(p as *mut v128, v)
    }
    /// # Safety
    /// `p` must be readable.
    #[inline(always)]
    pub unsafe fn splat_load(p: *const f32) -> Raw {
        v128_load32_splat(p as *const u32)
    }
    #[inline(always)]
    pub fn add(a: Raw, b: Raw) -> Raw {
        f32x4_add(a, b)
    }
    #[inline(always)]
    pub fn sub(a: Raw, b: Raw) -> Raw {
        f32x4_sub(a, b)
    }
    #[inline(always)]
    pub fn mul(a: Raw, b: Raw) -> Raw {
        f32x4_mul(a, b)
    }
    #[inline(always)]
    pub fn div(a: Raw, b: Raw) -> Raw {
        f32x4_div(a, b)
    }
    /// `c + a · b`: one fused multiply-add where the build has relaxed SIMD (the
    /// `relaxed-simd` worker, loaded only where the browser validates it), else a
    /// multiply and an add.
    #[cfg(feature = "relaxed-simd")]
    #[inline(always)]
    pub fn mul_add(c: Raw, a: Raw, b: Raw) -> Raw {
        // Only this build contains the instruction, and the page starts it only where
        // relaxed SIMD validates (src/ui/worker_client.rs).
        f32x4_relaxed_madd(a, b, c)
    }
    #[cfg(not(feature = "relaxed-simd"))]
    #[inline(always)]
    pub fn mul_add(c: Raw, a: Raw, b: Raw) -> Raw {
        f32x4_add(c, f32x4_mul(a, b))
    }
    #[inline(always)]
    pub fn max(a: Raw, b: Raw) -> Raw {
        f32x4_pmax(a, b)
    }
    #[inline(always)]
    pub fn min(a: Raw, b: Raw) -> Raw {
        f32x4_pmin(a, b)
    }
    #[inline(always)]
    pub fn abs(a: Raw) -> Raw {
        f32x4_abs(a)
    }
    /// `2ⁿ` from `t = n + magic` (n integral in [-127, 127]): `n` is the difference of the
    /// bit patterns.
    #[inline(always)]
    pub fn pow2_bits(t: Raw, magic: f32) -> Raw {
        let n = i32x4_sub(t, i32x4_splat(magic.to_bits() as i32));
        i32x4_shl(i32x4_add(n, i32x4_splat(127)), 23)
    }
    /// Lanes where `a < b` take `y`, the others `x`.
    #[inline(always)]
    pub fn select_lt(a: Raw, b: Raw, y: Raw, x: Raw) -> Raw {
        v128_bitselect(y, x, f32x4_lt(a, b))
    }
    /// Eight f16 (bits) at `src` as f32 at `dst`, exactly: a normal half's exponent is
    /// rebiased in the integer bits; a subnormal one (`m · 2⁻²⁴`) is converted from its
    /// integer `m`, so no subnormal float is ever formed (x86 takes assists on those).
    ///
    /// # Safety
    /// `src..src + 8` readable, `dst..dst + 8` writable. Halves must be finite.
    #[inline(always)]
    pub unsafe fn widen8(src: *const u16, dst: *mut f32) {
        let h = v128_load(src as *const v128);
        for (i, v) in [u32x4_extend_low_u16x8(h), u32x4_extend_high_u16x8(h)]
            .into_iter()
            .enumerate()
        {
            let sign = i32x4_shl(v128_and(v, u32x4_splat(0x8000)), 16);
            let magnitude = v128_and(v, u32x4_splat(0x7fff));
            let normal = i32x4_add(i32x4_shl(magnitude, 13), u32x4_splat(112 << 23));
            let subnormal = f32x4_mul(f32x4_convert_i32x4(magnitude), f32x4_splat(5.960_464_5e-8));
            let is_subnormal = u32x4_lt(magnitude, u32x4_splat(0x400));
            let widened = v128_or(v128_bitselect(subnormal, normal, is_subnormal), sign);
            v128_store(dst.add(4 * i) as *mut v128, widened);
        }
    }
    /// `[Σa, Σb, Σc, Σd]`, each sum as `(x0 + x2) + (x1 + x3)`.
    #[inline(always)]
    pub fn hsum4(a: Raw, b: Raw, c: Raw, d: Raw) -> Raw {
        let ab = f32x4_add(
            i32x4_shuffle::<0, 4, 1, 5>(a, b),
            i32x4_shuffle::<2, 6, 3, 7>(a, b),
        );
        let cd = f32x4_add(
            i32x4_shuffle::<0, 4, 1, 5>(c, d),
            i32x4_shuffle::<2, 6, 3, 7>(c, d),
        );
        f32x4_add(
            i32x4_shuffle::<0, 1, 4, 5>(ab, cd),
            i32x4_shuffle::<2, 3, 6, 7>(ab, cd),
        )
    }
    #[inline(always)]
    pub fn lane(a: Raw, i: usize) -> f32 {
        match i {
            0 => f32x4_extract_lane::<0>(a),
            1 => f32x4_extract_lane::<1>(a),
            2 => f32x4_extract_lane::<2>(a),
            _ => f32x4_extract_lane::<3>(a),
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    pub type Raw = [f32; 4];

    #[inline(always)]
    fn map(a: Raw, f: impl Fn(f32) -> f32) -> Raw {
        [f(a[0]), f(a[1]), f(a[2]), f(a[3])]
    }
    #[inline(always)]
    fn zip(a: Raw, b: Raw, f: impl Fn(f32, f32) -> f32) -> Raw {
        [f(a[0], b[0]), f(a[1], b[1]), f(a[2], b[2]), f(a[3], b[3])]
    }
    #[inline(always)]
    pub fn zero() -> Raw {
        [0.0; 4]
    }
    #[inline(always)]
    pub fn splat(x: f32) -> Raw {
        [x; 4]
    }
    /// # Safety
    /// `p..p+4` must be readable.
    #[inline(always)]
    pub unsafe fn load(p: *const f32) -> Raw {
        (p as *const Raw).read_unaligned()
    }
    /// # Safety
    /// `p..p+4` must be writable.
    #[inline(always)]
    pub unsafe fn store(p: *mut f32, v: Raw) {
        (p as *mut Raw).write_unaligned(v)
    }
    /// # Safety
    /// `p` must be readable.
    #[inline(always)]
    pub unsafe fn splat_load(p: *const f32) -> Raw {
        [*p; 4]
    }
    #[inline(always)]
    pub fn add(a: Raw, b: Raw) -> Raw {
        zip(a, b, |x, y| x + y)
    }
    #[inline(always)]
    pub fn sub(a: Raw, b: Raw) -> Raw {
        zip(a, b, |x, y| x - y)
    }
    #[inline(always)]
    pub fn mul(a: Raw, b: Raw) -> Raw {
        zip(a, b, |x, y| x * y)
    }
    #[inline(always)]
    pub fn div(a: Raw, b: Raw) -> Raw {
        zip(a, b, |x, y| x / y)
    }
    // wasm's pmax/pmin: `b < a ? a : b` semantics as `a < b ? b : a`.
    /// Always a multiply then an add (the baseline wasm build's order of operations).
    #[inline(always)]
    pub fn mul_add(c: Raw, a: Raw, b: Raw) -> Raw {
        add(c, mul(a, b))
    }
    #[inline(always)]
    pub fn max(a: Raw, b: Raw) -> Raw {
        zip(a, b, |x, y| if x < y { y } else { x })
    }
    #[inline(always)]
    pub fn min(a: Raw, b: Raw) -> Raw {
        zip(a, b, |x, y| if y < x { y } else { x })
    }
    #[inline(always)]
    pub fn abs(a: Raw) -> Raw {
        map(a, f32::abs)
    }
    #[inline(always)]
    pub fn pow2_bits(t: Raw, magic: f32) -> Raw {
        map(t, |t| {
            let n = (t.to_bits() as i32).wrapping_sub(magic.to_bits() as i32);
            f32::from_bits((n.wrapping_add(127) as u32) << 23)
        })
    }
    #[inline(always)]
    pub fn select_lt(a: Raw, b: Raw, y: Raw, x: Raw) -> Raw {
        [0, 1, 2, 3].map(|i| if a[i] < b[i] { y[i] } else { x[i] })
    }
    #[inline(always)]
    pub fn hsum4(a: Raw, b: Raw, c: Raw, d: Raw) -> Raw {
        [a, b, c, d].map(|v| (v[0] + v[2]) + (v[1] + v[3]))
    }
    #[inline(always)]
    pub fn lane(a: Raw, i: usize) -> f32 {
        a[i]
    }
}

impl Add for V4 {
    type Output = V4;
    #[inline(always)]
    fn add(self, b: Self) -> Self {
        V4(imp::add(self.0, b.0))
    }
}

impl Sub for V4 {
    type Output = V4;
    #[inline(always)]
    fn sub(self, b: Self) -> Self {
        V4(imp::sub(self.0, b.0))
    }
}

impl Mul for V4 {
    type Output = V4;
    #[inline(always)]
    fn mul(self, b: Self) -> Self {
        V4(imp::mul(self.0, b.0))
    }
}

impl Div for V4 {
    type Output = V4;
    #[inline(always)]
    fn div(self, b: Self) -> Self {
        V4(imp::div(self.0, b.0))
    }
}

impl V4 {
    #[inline(always)]
    pub fn zero() -> Self {
        V4(imp::zero())
    }
    #[inline(always)]
    pub fn splat(x: f32) -> Self {
        V4(imp::splat(x))
    }
    /// # Safety
    /// `p..p+4` must be readable.
    #[inline(always)]
    pub unsafe fn load(p: *const f32) -> Self {
        V4(imp::load(p))
    }
    /// # Safety
    /// `p..p+4` must be writable.
    #[inline(always)]
    pub unsafe fn store(self, p: *mut f32) {
        imp::store(p, self.0)
    }
    /// All four lanes `*p` (one `v128.load32_splat` on wasm32).
    ///
    /// # Safety
    /// `p` must be readable.
    #[inline(always)]
    pub unsafe fn splat_load(p: *const f32) -> Self {
        V4(imp::splat_load(p))
    }
    /// `self + a · b`: fused in the relaxed-SIMD worker build (SIMD128 itself has no
    /// fused multiply-add), else a multiply then an add.
    #[inline(always)]
    pub fn mul_add(self, a: Self, b: Self) -> Self {
        V4(imp::mul_add(self.0, a.0, b.0))
    }
    #[inline(always)]
    pub fn max(self, b: Self) -> Self {
        V4(imp::max(self.0, b.0))
    }
    #[inline(always)]
    pub fn min(self, b: Self) -> Self {
        V4(imp::min(self.0, b.0))
    }
    #[inline(always)]
    pub fn abs(self) -> Self {
        V4(imp::abs(self.0))
    }
    #[inline(always)]
    pub fn lane(self, i: usize) -> f32 {
        imp::lane(self.0, i)
    }
    #[inline(always)]
    pub fn hsum4(a: Self, b: Self, c: Self, d: Self) -> Self {
        V4(imp::hsum4(a.0, b.0, c.0, d.0))
    }
    /// `(x0 + x2) + (x1 + x3)`.
    #[inline(always)]
    pub fn hsum(self) -> f32 {
        V4::hsum4(self, self, self, self).lane(0)
    }

    /// `e^x`, ~1 ulp, exactly `0` below -86 ([`exp_n`]).
    #[inline(always)]
    pub fn exp(self) -> Self {
        exp_n([self])[0]
    }

    /// GELU, erf form: `x/2 · (1 + erf(x/√2))`.
    #[inline(always)]
    pub fn gelu(self) -> Self {
        gelu_n([self])[0]
    }
}

/// `f(i)` for each of `N` lanes groups.
#[inline(always)]
fn each<const N: usize>(f: impl Fn(usize) -> V4) -> [V4; N] {
    std::array::from_fn(f)
}

/// [`V4::exp`] on `N` vectors at once. Why `N`: V8 rebuilds a `v128` constant at every use
/// (two 64-bit immediates and a shuffle) and these polynomials have ~20 of them; built once
/// per `N` vectors they cost 1/N as much (GELU: 4.6 → 3.4 ns an element at `N` = 4). Each
/// vector's arithmetic is unchanged.
///
/// Cephes' `expf` polynomial, ~1 ulp; exactly `0` below -86 (masked attention scores of
/// `f32::MIN` must give 0; and no subnormal results: wasm has no flush-to-zero, and x86
/// takes ~100-cycle assists on subnormals, which made GELU 6x slower).
/// `n = round(x·log2 e)` by the 1.5·2²³ trick (the add rounds to an integer, which then
/// sits in the low mantissa bits), so `2ⁿ` is integer arithmetic on those bits.
#[inline(always)]
fn exp_n<const N: usize>(v: [V4; N]) -> [V4; N] {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
    let (hi, lo) = (V4::splat(88.0), V4::splat(-86.0));
    let x = each::<N>(|i| v[i].min(hi).max(lo));
    let magic = V4::splat(MAGIC);
    let log2e = V4::splat(std::f32::consts::LOG2_E);
    let t = each::<N>(|i| x[i] * log2e + magic);
    let n = each::<N>(|i| t[i] - magic);
    let (c1, c2) = (V4::splat(0.693_359_4), V4::splat(2.121_944_4e-4));
    let r = each::<N>(|i| x[i] - n[i] * c1 + n[i] * c2);
    let mut p = [V4::splat(1.987_569_1e-4); N];
    for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5] {
        let c = V4::splat(c);
        p = each::<N>(|i| p[i] * r[i] + c);
    }
    let one = V4::splat(1.0);
    let e = each::<N>(|i| p[i] * (r[i] * r[i]) + r[i] + one);
    let zero = imp::zero();
    let lim = imp::splat(-86.0);
    each::<N>(|i| {
        let scaled = e[i] * V4(imp::pow2_bits(t[i].0, MAGIC));
        V4(imp::select_lt(v[i].0, lim, zero, scaled.0))
    })
}

/// [`V4::gelu`] on `N` vectors at once (see [`exp_n`] for why). `erf(u)` is the rational
/// minimax form of Eigen and TensorFlow, `u · P(u²) / Q(u²)` with `u` capped at ±4 (where
/// erf is ±1 to f32 precision): within 4.5e-7 of f64's erf over all f32 inputs, in about
/// half the operations of Abramowitz & Stegun 7.1.26 with an `exp` (PyTorch's vectorised
/// form, which we used before: within 6.3e-7). GELU is ~3.5% of a 128-token forward.
#[inline(always)]
fn gelu_n<const N: usize>(x: [V4; N]) -> [V4; N] {
    const P: [f32; 7] = [
        -2.726_142_4e-10,
        2.770_681_5e-8,
        -2.101_024e-6,
        -5.692_506_2e-5,
        -7.349_906_4e-4,
        -2.954_6e-3,
        -1.609_603_3e-2,
    ];
    const Q: [f32; 5] = [
        -1.456_607_15e-5,
        -2.133_740_5e-4,
        -1.682_827e-3,
        -7.373_329_3e-3,
        -1.426_473_9e-2,
    ];
    let s = V4::splat(std::f32::consts::FRAC_1_SQRT_2);
    let (hi, lo) = (V4::splat(4.0), V4::splat(-4.0));
    let u = each::<N>(|i| x[i].mul(s).min(hi).max(lo));
    let u2 = each::<N>(|i| u[i].mul(u[i]));
    let horner = |coefs: &[f32]| {
        let mut p = [V4::splat(coefs[0]); N];
        for &c in &coefs[1..] {
            let c = V4::splat(c);
            p = each::<N>(|i| p[i].mul(u2[i]).add(c));
        }
        p
    };
    let (p, q) = (horner(&P), horner(&Q));
    let (one, half) = (V4::splat(1.0), V4::splat(0.5));
    each::<N>(|i| {
        let erf = u[i].mul(p[i]).div(q[i]);
        erf.add(one).mul(half).mul(x[i])
    })
}

/// What the matrix products apply to each output before storing it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Epilogue<'a> {
    /// Multiplies the sum first (attention's 1/√d).
    pub scale: Option<f32>,
    /// Added per output column (a linear's bias).
    pub col_bias: Option<&'a [f32]>,
    /// Applies GELU last (the FFN's up-projection).
    pub gelu: bool,
}

impl<'a> Epilogue<'a> {
    pub const NONE: Epilogue<'static> = Epilogue {
        scale: None,
        col_bias: None,
        gelu: false,
    };

    /// The epilogue of the outputs from column `j0` on (the bias from `j0`).
    pub fn from_column(self, j0: usize) -> Epilogue<'a> {
        Epilogue {
            col_bias: self.col_bias.map(|bias| &bias[j0..]),
            ..self
        }
    }
}

/// Rows of `a` per micro-tile, and rows of `b` (columns of the output).
const R: usize = 2;
const C: usize = 4;
/// How much of `a` one pass over `b` covers in [`matmul_nt`].
const A_BLOCK_BYTES: usize = 192 * 1024;
/// How much of `b` a strip of `a` meets before the next strip (see `matmul_nt_rows`).
const B_PANEL_BYTES: usize = 96 * 1024;

/// `c[i, j] = epilogue(Σ_p a[i, p] · b[j, p])` for `i < n`, `j < m`, `p < k`: the product of
/// `a [n, k]` with the transpose of `b [m, k]`, both row-major with row strides `lda` and
/// `ldb`; `c` has row stride `ldc`. What `linear` (`x · wᵀ`) is on a weight not packed.
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
    check_out(c, ldc, n, m);
    // SAFETY: checked just above.
    unsafe { matmul_nt_to(a, lda, b, ldb, c.as_mut_ptr(), ldc, n, m, k, ep) }
}

/// [`matmul_nt`] into `c` given as a pointer, so that threads can each fill their own
/// columns of one output in place (a block of columns is not a slice).
///
/// # Safety
/// Rows `0..n` of `c`, `m` floats each, `ldc` apart, must be writable, and nothing else may
/// touch them during the call.
#[allow(clippy::too_many_arguments)]
pub unsafe fn matmul_nt_to(
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    n: usize,
    m: usize,
    k: usize,
    ep: Epilogue,
) {
    if n == 0 || m == 0 {
        return;
    }
    assert!(ldb >= k, "matmul_nt: strides below the row length");
    assert!(b.len() >= (m - 1) * ldb + k, "matmul_nt: b is too short");
    check_operands(a, lda, ldc, n, m, k, ep);
    matmul_nt_blocks::<false>(a, lda, b, ldb, c, ldc, n, m, k, ep);
}

/// Asserts that `c` holds `n` rows of `m` outputs, `ldc` apart.
fn check_out(c: &[f32], ldc: usize, n: usize, m: usize) {
    assert!(
        n == 0 || m == 0 || (ldc >= m && c.len() >= (n - 1) * ldc + m),
        "matmul_nt: c is too short"
    );
}

/// Output columns per panel of a packed weight: the packed micro-tile's width, three
/// vectors. With [`PACKED_ROWS`] rows that is 9 accumulators, 3 loads of the weight and 3
/// broadcasts of `x` per step of `k`: within the 15 vector registers V8 allocates on
/// x86-64, where a 4 × 12 or a 6 × 8 tile spills (measured in Chromium: 3 × 12 ran at
/// 50-57 GFLOP/s, the dot-product 2 × 4 tile at 43-48, 4 × 12 at 33-37).
pub const PANEL: usize = 12;
/// Rows of `x` per packed micro-tile.
const PACKED_ROWS: usize = 3;

/// Whether [`pack_nt`] takes a weight `[m, k]`: whole vectors of output columns.
pub fn packs_nt(m: usize, k: usize) -> bool {
    m > 0 && k > 0 && m.is_multiple_of(4)
}

/// `b [m, k]` (row-major) in the order [`matmul_nt_packed`] reads it: panels of [`PANEL`]
/// rows of `b` (output columns; the last panel has `m % PANEL` if that is not 0), each
/// stored transposed, `[k][width]`, at offset `j0 · k` for its first row `j0`.
///
/// Why: the micro-tile then takes outer products, one step of `k` at a time, reading the
/// panel as one contiguous stream (at a few tokens, each weight byte comes from memory
/// once and the hardware prefetcher has the next bytes in time), and each output is one
/// chain of multiply-adds in the order of `k`, written straight out with no lane reduction.
pub fn pack_nt(b: &[f32], m: usize, k: usize) -> Vec<f32> {
    pack_nt_as(b, m, k, |x| x)
}

/// [`pack_nt`]'s order, each value through `to` (straight into the packed type, with no
/// f32 copy on the way: loading then holds one packed weight, not two).
fn pack_nt_as<T>(b: &[f32], m: usize, k: usize, to: impl Fn(f32) -> T) -> Vec<T> {
    assert!(packs_nt(m, k), "pack_nt: [{m}, {k}] is not whole vectors of rows");
    assert_eq!(b.len(), m * k, "pack_nt: b is not [{m}, {k}]");
    let mut out = Vec::with_capacity(m * k);
    for j0 in (0..m).step_by(PANEL) {
        let rows = &b[j0 * k..(j0 + PANEL).min(m) * k];
        for p in 0..k {
            out.extend(rows.chunks_exact(k).map(|row| to(row[p])));
        }
    }
    out
}

/// `c = epilogue(a · bᵀ)` as [`matmul_nt`], with `b` as [`pack_nt`] (f32) or
/// [`pack_nt_f16`] (f16) left it (`packs_nt(m, k)` must hold). Each output is
/// `Σ_p a[i, p] · b[j, p]` summed in the order of `p`, one multiply-add at a time (fused in
/// the relaxed-SIMD build); an f16 weight gives the f32 result on the widened values, bit
/// for bit.
#[allow(clippy::too_many_arguments)]
pub fn matmul_nt_packed<T: Packed>(
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
    check_out(c, ldc, n, m);
    // SAFETY: checked just above.
    unsafe { matmul_nt_packed_to(a, lda, b, c.as_mut_ptr(), ldc, n, m, k, ep) }
}

/// [`matmul_nt_packed`] into `c` given as a pointer, as [`matmul_nt_to`].
///
/// # Safety
/// As [`matmul_nt_to`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn matmul_nt_packed_to<T: Packed>(
    a: &[f32],
    lda: usize,
    b: &[T],
    c: *mut f32,
    ldc: usize,
    n: usize,
    m: usize,
    k: usize,
    ep: Epilogue,
) {
    if n == 0 || m == 0 {
        return;
    }
    assert!(
        packs_nt(m, k),
        "matmul_nt_packed: [{m}, {k}] is not whole vectors of rows"
    );
    assert!(b.len() >= m * k, "matmul_nt_packed: b is too short");
    check_operands(a, lda, ldc, n, m, k, ep);
    T::product_to(a, lda, b, c, ldc, n, m, k, ep);
}

/// What a packed weight's values are kept in: f32, or f16 for half the memory.
pub trait Packed: Copy + Send + Sync + 'static {
    /// [`matmul_nt_packed_to`] once its asserts hold.
    ///
    /// # Safety
    /// As [`matmul_nt_to`], with [`matmul_nt_packed_to`]'s asserts.
    #[allow(clippy::too_many_arguments)]
    unsafe fn product_to(
        a: &[f32],
        lda: usize,
        b: &[Self],
        c: *mut f32,
        ldc: usize,
        n: usize,
        m: usize,
        k: usize,
        ep: Epilogue,
    );
}

impl Packed for f32 {
    unsafe fn product_to(
        a: &[f32],
        lda: usize,
        b: &[f32],
        c: *mut f32,
        ldc: usize,
        n: usize,
        m: usize,
        k: usize,
        ep: Epilogue,
    ) {
        matmul_nt_blocks::<true>(a, lda, b, k, c, ldc, n, m, k, ep);
    }
}

thread_local! {
    /// [`Packed for f16`](Packed)'s widened group of panels, kept between calls.
    static WIDENED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Groups of panels outer, each widened once into an f32 scratch, all rows inner: the
/// widening then costs once per weight, not once per block of rows.
impl Packed for f16 {
    unsafe fn product_to(
        a: &[f32],
        lda: usize,
        b: &[f16],
        c: *mut f32,
        ldc: usize,
        n: usize,
        m: usize,
        k: usize,
        ep: Epilogue,
    ) {
        let group = packed_group(k);
        let block = row_block(k);
        WIDENED.with_borrow_mut(|scratch| {
            scratch.resize(scratch.len().max(group.min(m) * k), 0.0);
            let mut j0 = 0;
            while j0 < m {
                let j1 = m.min(j0 + group);
                let w = &mut scratch[..(j1 - j0) * k];
                widen_f16(&b[j0 * k..j1 * k], w);
                let ep = ep.from_column(j0);
                let mut i0 = 0;
                while i0 < n {
                    let i1 = n.min(i0 + block);
                    packed_rows(a, lda, w, c.add(j0), ldc, i0, i1, j1 - j0, k, ep, false);
                    i0 = i1;
                }
                j0 = j1;
            }
        });
        if ep.gelu {
            gelu_rows(c, ldc, 0, n, m);
        }
    }
}

/// [`pack_nt`]'s panels stored as f16: half the memory, for a weight that a checkpoint
/// stored in f16 (each value is then exact in f16, so nothing is rounded; other values are
/// rounded to nearest).
pub fn pack_nt_f16(b: &[f32], m: usize, k: usize) -> Vec<f16> {
    pack_nt_as(b, m, k, f16::from_f32)
}

/// `dst[i] = src[i]` as f32, exactly (every finite f16 is an f32; subnormal halves become
/// normal floats, with no subnormal float on the way, which x86 would take assists on).
pub fn widen_f16(src: &[f16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "widen_f16: lengths differ");
    // Eight at a time with wasm SIMD; the rest (all of it natively) one by one.
    let done = if cfg!(target_arch = "wasm32") {
        src.len() & !7
    } else {
        0
    };
    #[cfg(target_arch = "wasm32")]
    {
        let mut i = 0;
        while i < done {
            // SAFETY: i + 8 <= done <= both lengths; f16 is a transparent u16.
            unsafe { imp::widen8(src.as_ptr().add(i) as *const u16, dst.as_mut_ptr().add(i)) };
            i += 8;
        }
    }
    for (d, s) in dst[done..].iter_mut().zip(&src[done..]) {
        *d = s.to_f32();
    }
}

/// Checks what [`matmul_nt_to`]'s kernels read besides `b`.
fn check_operands(a: &[f32], lda: usize, ldc: usize, n: usize, m: usize, k: usize, ep: Epilogue) {
    assert!(lda >= k && ldc >= m, "matmul_nt: strides below the row length");
    assert!(a.len() >= (n - 1) * lda + k, "matmul_nt: a is too short");
    if let Some(bias) = ep.col_bias {
        assert!(bias.len() >= m, "matmul_nt: bias is too short");
    }
}

/// Rows of `a` per pass over `b` in [`matmul_nt`]: a block that fits in L2 (~192 KB).
fn row_block(k: usize) -> usize {
    ((A_BLOCK_BYTES / (4 * k.max(1))).max(R) / R) * R
}

/// Columns of a packed weight that one strip of `a` meets before the next (~96 KB).
fn packed_group(k: usize) -> usize {
    ((B_PANEL_BYTES / (4 * k)).max(PANEL) / PANEL) * PANEL
}

/// GELU on rows `i0..i1` of `c`, `m` outputs each: a second pass over rows still in cache
/// (inlined into the tiles, the GELU code made V8 spill the accumulators: 3x slower).
///
/// # Safety
/// Those outputs must be the caller's to write ([`matmul_nt_to`]'s contract).
unsafe fn gelu_rows(c: *mut f32, ldc: usize, i0: usize, i1: usize, m: usize) {
    for i in i0..i1 {
        gelu_inplace(std::slice::from_raw_parts_mut(c.add(i * ldc), m));
    }
}

/// [`matmul_nt_to`] and [`matmul_nt_packed_to`] (f32) once the operands are checked.
///
/// # Safety
/// As [`matmul_nt_to`].
#[allow(clippy::too_many_arguments)]
unsafe fn matmul_nt_blocks<const PACKED: bool>(
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    n: usize,
    m: usize,
    k: usize,
    ep: Epilogue,
) {
    // Blocks of rows of a that fit in L2 outer; inside, columns (rows of b) outer: a block
    // of C rows of b (C·k floats) stays in L1 while the a block streams past.
    let block = row_block(k);
    let mut i0 = 0;
    while i0 < n {
        let i1 = n.min(i0 + block);
        if PACKED {
            packed_rows(a, lda, b, c, ldc, i0, i1, m, k, ep, true);
        } else {
            matmul_nt_rows(a, lda, b, ldb, c, ldc, i0, i1, m, k, ep);
        }
        if ep.gelu {
            gelu_rows(c, ldc, i0, i1, m);
        }
        i0 = i1;
    }
}

/// Rows `i0..i1` of [`matmul_nt`]: panels of rows of `b` that fit in L2 (~96 KB); inside
/// a panel, each `R`-row strip of `a` (in L1) meets every `C`-row block of the panel, so a
/// strip's outputs are written contiguously.
///
/// # Safety
/// As [`matmul_nt_to`], with `matmul_nt_blocks`' asserts.
#[cfg_attr(
    all(target_arch = "wasm32", feature = "relaxed-simd"),
    target_feature(enable = "relaxed-simd")
)]
#[allow(clippy::too_many_arguments)]
unsafe fn matmul_nt_rows(
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    i0: usize,
    i1: usize,
    m: usize,
    k: usize,
    ep: Epilogue,
) {
    let panel = ((B_PANEL_BYTES / (4 * k.max(1))).max(C) / C) * C;
    let mut j0 = 0;
    while j0 < m {
        let j1 = m.min(j0 + panel);
        let mut i = i0;
        while i < i1 {
            let rows = R.min(i1 - i);
            let mut j = j0;
            while j < j1 {
                let cols = C.min(j1 - j);
                // SAFETY: the callers' asserts bound every row read and written.
                unsafe {
                    match (rows, cols) {
                        (2, 4) => tile_nt::<2, 4>(a, lda, b, ldb, c, ldc, i, j, k, ep),
                        (1, 4) => tile_nt::<1, 4>(a, lda, b, ldb, c, ldc, i, j, k, ep),
                        (2, 3) => tile_nt::<2, 3>(a, lda, b, ldb, c, ldc, i, j, k, ep),
                        (1, 3) => tile_nt::<1, 3>(a, lda, b, ldb, c, ldc, i, j, k, ep),
                        (2, 2) => tile_nt::<2, 2>(a, lda, b, ldb, c, ldc, i, j, k, ep),
                        (1, 2) => tile_nt::<1, 2>(a, lda, b, ldb, c, ldc, i, j, k, ep),
                        (2, _) => tile_nt::<2, 1>(a, lda, b, ldb, c, ldc, i, j, k, ep),
                        _ => tile_nt::<1, 1>(a, lda, b, ldb, c, ldc, i, j, k, ep),
                    }
                }
                j += cols;
            }
            i += rows;
        }
        j0 = j1;
    }
}

/// One `RR × CC` tile of [`matmul_nt`] at row `i`, column `j`.
///
/// # Safety
/// Rows `i..i+RR` of `a`, `j..j+CC` of `b` (length `k`) and the tile of `c` must be in bounds.
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
#[inline(always)]
unsafe fn tile_nt<const RR: usize, const CC: usize>(
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    i: usize,
    j: usize,
    k: usize,
    ep: Epilogue,
) {
    let ap: [*const f32; RR] = std::array::from_fn(|r| a.as_ptr().add((i + r) * lda));
    let bp: [*const f32; CC] = std::array::from_fn(|q| b.as_ptr().add((j + q) * ldb));
    let mut acc = [[V4::zero(); CC]; RR];
    let k4 = k & !3;
    let mut p = 0;
    while p < k4 {
        let av: [V4; RR] = std::array::from_fn(|r| V4::load(ap[r].add(p)));
        for q in 0..CC {
            let bv = V4::load(bp[q].add(p));
            for r in 0..RR {
                acc[r][q] = acc[r][q].mul_add(av[r], bv);
            }
        }
        p += 4;
    }
    for r in 0..RR {
        let z = V4::zero();
        let get = |q: usize| if q < CC { acc[r][q] } else { z };
        let mut sums = V4::hsum4(get(0), get(1), get(2), get(3));
        if k4 < k {
            // The k % 4 tail, scalar, after the lanes.
            let mut tail = [0f32; 4];
            for (q, t) in tail.iter_mut().enumerate().take(CC) {
                for p in k4..k {
                    *t += *ap[r].add(p) * *bp[q].add(p);
                }
            }
            sums = sums.add(V4::load(tail.as_ptr()));
        }
        let out = c.add((i + r) * ldc + j);
        store_cols::<CC>(apply(sums, ep, j, CC), out);
    }
}

/// Rows `i0..i1` of [`matmul_nt_packed`]: groups of panels that fit in L2 (~96 KB); inside
/// a group, each [`PACKED_ROWS`]-row strip of `a` (in L1) meets every panel of the group.
/// `cold`: `b` comes from memory (not a scratch just written), so each group's lines are
/// touched first ([`touch_lines`]).
///
/// # Safety
/// As [`matmul_nt_to`], with [`matmul_nt_packed_to`]'s asserts.
#[cfg_attr(
    all(target_arch = "wasm32", feature = "relaxed-simd"),
    target_feature(enable = "relaxed-simd")
)]
#[allow(clippy::too_many_arguments)]
unsafe fn packed_rows(
    a: &[f32],
    lda: usize,
    b: &[f32],
    c: *mut f32,
    ldc: usize,
    i0: usize,
    i1: usize,
    m: usize,
    k: usize,
    ep: Epilogue,
    cold: bool,
) {
    let group = packed_group(k);
    let mut j0 = 0;
    while j0 < m {
        let j1 = m.min(j0 + group);
        // When more than one strip will meet the group; only in wasm, where it was measured
        // (bench/README.md: 5-15% at 10 and 32 tokens in Chromium).
        if cold && cfg!(target_arch = "wasm32") && i1 - i0 > PACKED_ROWS {
            touch_lines(&b[j0 * k..j1 * k]);
        }
        let mut i = i0;
        while i < i1 {
            let rows = PACKED_ROWS.min(i1 - i);
            let at = a[i * lda..].as_ptr();
            let mut j = j0;
            while j < j1 {
                // A whole panel, or the last one (m % PANEL columns, whole vectors).
                let cols = PANEL.min(j1 - j);
                let panel = b[j * k..].as_ptr();
                let out = c.add(i * ldc + j);
                // SAFETY: matmul_nt_packed's asserts bound rows i..i + rows of a and c,
                // and the panel (`cols · k` floats at `j · k`, rows `cols` apart).
                unsafe { outer_tile(rows, cols, at, lda, panel, cols, out, ldc, j, k, ep) };
                j += cols;
            }
            i += rows;
        }
        j0 = j1;
    }
}

/// Reads one float of each 64-byte line of `w`, so that a group of panels is in cache
/// before the first strip of rows meets it. Streamed by the tiles instead, the first strip
/// waits on memory: with the tile's ~20 wasm instructions a line, the out-of-order window
/// holds too few misses, and wasm has no prefetch instruction. Four sums, so that the adds
/// do not chain the loads.
#[inline(never)]
fn touch_lines(w: &[f32]) {
    const LINE: usize = 16;
    let mut sums = [0f32; 4];
    let mut fours = w.chunks_exact(4 * LINE);
    for four in &mut fours {
        for (q, sum) in sums.iter_mut().enumerate() {
            // SAFETY: q · LINE < four.len(); volatile, so that the read is kept.
            *sum += unsafe { std::ptr::read_volatile(four.as_ptr().add(q * LINE)) };
        }
    }
    for line in fours.remainder().chunks(LINE) {
        // SAFETY: chunks are never empty.
        sums[0] += unsafe { std::ptr::read_volatile(line.as_ptr()) };
    }
    std::hint::black_box(sums);
}

/// One `rows × cols` tile of outer products (`rows` ≤ 3; `cols` 12, 8 or 4), the micro-kernel
/// of [`matmul_nt_packed`] and [`matmul_nn`]: `a` at the tile's first row, `b` at its first
/// column (rows `ldb` apart: a packed panel's width, or `b`'s row stride), `out` at its
/// first output; `j` is its first column, for the bias.
///
/// # Safety
/// Rows `0..rows` of `a` (length `k`) and of `out` (width `cols`), and rows `0..k` of `b`
/// (width `cols`), must be in bounds.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn outer_tile(
    rows: usize,
    cols: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    out: *mut f32,
    ldc: usize,
    j: usize,
    k: usize,
    ep: Epilogue,
) {
    match (rows, cols) {
        (3, 12) => tile_outer::<3, 3>(a, lda, b, ldb, out, ldc, j, k, ep),
        (2, 12) => tile_outer::<2, 3>(a, lda, b, ldb, out, ldc, j, k, ep),
        (1, 12) => tile_outer::<1, 3>(a, lda, b, ldb, out, ldc, j, k, ep),
        (3, 8) => tile_outer::<3, 2>(a, lda, b, ldb, out, ldc, j, k, ep),
        (2, 8) => tile_outer::<2, 2>(a, lda, b, ldb, out, ldc, j, k, ep),
        (1, 8) => tile_outer::<1, 2>(a, lda, b, ldb, out, ldc, j, k, ep),
        (3, _) => tile_outer::<3, 1>(a, lda, b, ldb, out, ldc, j, k, ep),
        (2, _) => tile_outer::<2, 1>(a, lda, b, ldb, out, ldc, j, k, ep),
        _ => tile_outer::<1, 1>(a, lda, b, ldb, out, ldc, j, k, ep),
    }
}

/// [`outer_tile`] for `RR` rows × `CV` vectors.
///
/// # Safety
/// As [`outer_tile`].
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
#[inline(always)]
unsafe fn tile_outer<const RR: usize, const CV: usize>(
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    out: *mut f32,
    ldc: usize,
    j: usize,
    k: usize,
    ep: Epilogue,
) {
    let acc = outer_products::<RR, CV>(a, lda, b, ldb, k);
    for r in 0..RR {
        for q in 0..CV {
            apply(acc[r][q], ep, j + 4 * q, 4).store(out.add(r * ldc + 4 * q));
        }
    }
}

/// `Σ_p a[r, p] · b[p, 4q..4q + 4]` for `r < RR`, `q < CV`: `a` rows `lda` apart, `b` rows
/// `ldb` apart; each sum one multiply-add chain in the order of `p`. The micro-kernel of
/// [`matmul_nt_packed`] and [`matmul_nn`].
///
/// # Safety
/// Rows `0..RR` of `a` (length `k`) and rows `0..k` of `b` (length `4·CV`) must be readable.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
unsafe fn outer_products<const RR: usize, const CV: usize>(
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    k: usize,
) -> [[V4; CV]; RR] {
    let ap: [*const f32; RR] = std::array::from_fn(|r| a.add(r * lda));
    let mut acc = [[V4::zero(); CV]; RR];
    let mut bp = b;
    for p in 0..k {
        let bv: [V4; CV] = std::array::from_fn(|q| V4::load(bp.add(4 * q)));
        for r in 0..RR {
            let av = V4::splat_load(ap[r].add(p));
            for q in 0..CV {
                acc[r][q] = acc[r][q].mul_add(av, bv[q]);
            }
        }
        bp = bp.add(ldb);
    }
    acc
}

#[inline(always)]
fn apply(mut v: V4, ep: Epilogue, j: usize, cols: usize) -> V4 {
    if let Some(s) = ep.scale {
        v = v.mul(V4::splat(s));
    }
    if let Some(bias) = ep.col_bias {
        let mut bb = [0f32; 4];
        bb[..cols].copy_from_slice(&bias[j..j + cols]);
        // SAFETY: a local array of four.
        v = v.add(unsafe { V4::load(bb.as_ptr()) });
    }
    v
}

/// Stores the first `CC` lanes of `v` at `out`.
///
/// # Safety
/// `out..out+CC` must be writable.
#[inline(always)]
unsafe fn store_cols<const CC: usize>(v: V4, out: *mut f32) {
    if CC == 4 {
        v.store(out);
    } else {
        for q in 0..CC {
            *out.add(q) = v.lane(q);
        }
    }
}

/// `c[i, j] = scale · Σ_p a[i, p] · b[p, j]` for `i < n`, `j < m`, `p < k` (no scale where
/// `None`): `a [n, k]` times `b [k, m]`, row-major with row strides `lda`, `ldb`, `ldc`.
/// Attention's `probs · v`, written straight into the merged `[tokens, heads × head_dim]`
/// context, and its `q · kᵀ / √d` on each head's keys transposed.
#[cfg_attr(
    all(target_arch = "wasm32", feature = "relaxed-simd"),
    target_feature(enable = "relaxed-simd")
)]
#[allow(clippy::too_many_arguments)]
pub fn matmul_nn(
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
    n: usize,
    m: usize,
    k: usize,
    scale: Option<f32>,
) {
    if n == 0 || m == 0 {
        return;
    }
    assert!(
        lda >= k && ldb >= m && ldc >= m,
        "matmul_nn: strides below the row length"
    );
    assert!(a.len() >= (n - 1) * lda + k, "matmul_nn: a is too short");
    assert!(
        k == 0 || b.len() >= (k - 1) * ldb + m,
        "matmul_nn: b is too short"
    );
    assert!(c.len() >= (n - 1) * ldc + m, "matmul_nn: c is too short");
    let ep = Epilogue {
        scale,
        ..Epilogue::NONE
    };
    let mut i = 0;
    while i < n {
        // Strips of 3 rows, 12 columns a tile where it can: as `matmul_nt_packed`.
        let rows = PACKED_ROWS.min(n - i);
        let mut j = 0;
        while j + 4 <= m {
            let cols = PANEL.min((m - j) & !3);
            // SAFETY: the asserts above bound rows i..i + rows of a and c, and columns
            // j..j + cols of every row of b.
            unsafe {
                let (at, bt) = (a.as_ptr().add(i * lda), b.as_ptr().add(j));
                let out = c.as_mut_ptr().add(i * ldc + j);
                outer_tile(rows, cols, at, lda, bt, ldb, out, ldc, j, k, ep);
            }
            j += cols;
        }
        // The m % 4 tail, scalar.
        for jj in j..m {
            for r in i..i + rows {
                let mut s = 0f32;
                for p in 0..k {
                    s += a[r * lda + p] * b[p * ldb + jj];
                }
                c[r * ldc + jj] = scale.map_or(s, |f| s * f);
            }
        }
        i += rows;
    }
}

/// In-place softmax of one row, as candle's `softmax_last_dim`: `e^(x - max) / Σ`.
pub fn softmax_row(row: &mut [f32]) {
    let n4 = row.len() & !3;
    let mut mv = V4::splat(f32::NEG_INFINITY);
    // SAFETY: p + 4 <= n4 <= row.len().
    unsafe {
        let mut p = 0;
        while p < n4 {
            mv = mv.max(V4::load(row.as_ptr().add(p)));
            p += 4;
        }
    }
    let mut mx = mv.lane(0).max(mv.lane(1)).max(mv.lane(2).max(mv.lane(3)));
    for &x in row[n4..].iter() {
        mx = mx.max(x);
    }
    let mvec = V4::splat(mx);
    let mut sum = V4::zero();
    let mut tail = 0f32;
    // Four vectors at a time ([`exp_n`]), summed in the same order as one at a time.
    // SAFETY: p + 16 <= n16 and p + 4 <= n4, both <= row.len().
    unsafe {
        let ptr = row.as_mut_ptr();
        let n16 = row.len() & !15;
        let mut p = 0;
        while p < n16 {
            let x: [V4; 4] = std::array::from_fn(|i| V4::load(ptr.add(p + 4 * i)).sub(mvec));
            for (i, e) in exp_n(x).into_iter().enumerate() {
                e.store(ptr.add(p + 4 * i));
                sum = sum.add(e);
            }
            p += 16;
        }
        while p < n4 {
            let e = V4::load(ptr.add(p)).sub(mvec).exp();
            e.store(ptr.add(p));
            sum = sum.add(e);
            p += 4;
        }
    }
    for x in row[n4..].iter_mut() {
        let e = scalar_exp(*x - mx);
        *x = e;
        tail += e;
    }
    let inv = V4::splat(sum.hsum() + tail);
    // SAFETY: as above.
    unsafe {
        let ptr = row.as_mut_ptr();
        let mut p = 0;
        while p < n4 {
            V4::load(ptr.add(p)).div(inv).store(ptr.add(p));
            p += 4;
        }
    }
    let s = inv.lane(0);
    for x in row[n4..].iter_mut() {
        *x /= s;
    }
}

/// [`V4::exp`] on one value (the same arithmetic).
fn scalar_exp(x: f32) -> f32 {
    V4::splat(x).exp().lane(0)
}

/// [`V4::gelu`] on one value (the same arithmetic).
pub fn gelu_scalar(x: f32) -> f32 {
    V4::splat(x).gelu().lane(0)
}

/// GELU over a slice, in place: four vectors at a time ([`gelu_n`]), then one.
pub fn gelu_inplace(xs: &mut [f32]) {
    let n16 = xs.len() & !15;
    let n4 = xs.len() & !3;
    // SAFETY: p + 16 <= n16 and p + 4 <= n4, both <= xs.len().
    unsafe {
        let ptr = xs.as_mut_ptr();
        let mut p = 0;
        while p < n16 {
            let v: [V4; 4] = std::array::from_fn(|i| V4::load(ptr.add(p + 4 * i)));
            for (i, g) in gelu_n(v).into_iter().enumerate() {
                g.store(ptr.add(p + 4 * i));
            }
            p += 16;
        }
        while p < n4 {
            V4::load(ptr.add(p)).gelu().store(ptr.add(p));
            p += 4;
        }
    }
    for x in xs[n4..].iter_mut() {
        *x = gelu_scalar(*x);
    }
}

/// LayerNorm of each `d`-wide row of `x` into `y`: `(x - mean) / √(var + eps) · γ + β`, with
/// the biased variance, as PyTorch.
#[cfg_attr(
    all(target_arch = "wasm32", feature = "relaxed-simd"),
    target_feature(enable = "relaxed-simd")
)]
pub fn layer_norm(x: &[f32], y: &mut [f32], d: usize, gamma: &[f32], beta: &[f32], eps: f32) {
    assert!(d > 0 && x.len().is_multiple_of(d) && y.len() == x.len() && gamma.len() == d && beta.len() == d);
    let d4 = d & !3;
    for (xr, yr) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
        // SAFETY: every vector access is below d4 <= d, within the row.
        unsafe {
            let (xp, yp) = (xr.as_ptr(), yr.as_mut_ptr());
            let mut s = V4::zero();
            let mut p = 0;
            while p < d4 {
                s = s.add(V4::load(xp.add(p)));
                p += 4;
            }
            let mean = (s.hsum() + xr[d4..].iter().sum::<f32>()) / d as f32;
            let mv = V4::splat(mean);
            let mut s2 = V4::zero();
            p = 0;
            while p < d4 {
                let c = V4::load(xp.add(p)).sub(mv);
                s2 = s2.mul_add(c, c);
                p += 4;
            }
            let var = (s2.hsum() + xr[d4..].iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>()) / d as f32;
            let inv = 1.0 / (var + eps).sqrt();
            let iv = V4::splat(inv);
            p = 0;
            while p < d4 {
                let c = V4::load(xp.add(p)).sub(mv).mul(iv);
                c.mul(V4::load(gamma.as_ptr().add(p)))
                    .add(V4::load(beta.as_ptr().add(p)))
                    .store(yp.add(p));
                p += 4;
            }
            for q in d4..d {
                yr[q] = (xr[q] - mean) * inv * gamma[q] + beta[q];
            }
        }
    }
}

/// Scaled dot-product attention on host slices: `q`, `k`, `v` are
/// `[batch × seq, heads × hd]`; `key_bias` has one additive entry per row (0 or `f32::MIN`).
/// Returns the context in the same layout; `probs`, when given, receives the probabilities
/// `[batch, heads, seq, seq]`.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    batch: usize,
    seq: usize,
    heads: usize,
    key_bias: &[f32],
    mut probs: Option<&mut [f32]>,
) -> Vec<f32> {
    let d = q.len() / (batch * seq).max(1);
    let hd = d / heads;
    assert!(hd * heads == d && q.len() == batch * seq * d && k.len() == q.len() && v.len() == q.len());
    assert!(key_bias.len() == batch * seq);
    let scale = (1.0 / (hd as f64).sqrt()) as f32;
    let mut ctx = vec![0f32; q.len()];
    let mut scratch = vec![0f32; if probs.is_some() { 0 } else { seq * seq }];
    for b in 0..batch {
        for h in 0..heads {
            let s: &mut [f32] = match probs.as_deref_mut() {
                Some(p) => &mut p[(b * heads + h) * seq * seq..(b * heads + h + 1) * seq * seq],
                None => &mut scratch,
            };
            let off = b * seq * d + h * hd;
            attention_head(
                q,
                k,
                v,
                d,
                hd,
                seq,
                off,
                &key_bias[b * seq..(b + 1) * seq],
                scale,
                s,
                &mut ctx[off..],
                d,
            );
        }
    }
    ctx
}

/// One head of [`attention`]: the head's `seq` rows start at `off` in `q`, `k`, `v` (row
/// stride `d`, `hd` wide); `s` (`seq × seq`) receives the probabilities and `out` the context,
/// with row stride `ldo`. Public so the threaded split (`par`) runs heads side by side.
#[allow(clippy::too_many_arguments)]
pub fn attention_head(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    d: usize,
    hd: usize,
    seq: usize,
    off: usize,
    bias: &[f32],
    scale: f32,
    s: &mut [f32],
    out: &mut [f32],
    ldo: usize,
) {
    // `q · kᵀ` as outer products on the head's keys transposed, `[hd][seq]`: the linears'
    // tile shape, with no lane sums at the end of each short (hd) dot product.
    let mut kt = vec![0f32; hd * seq];
    for (j, key) in k[off..].chunks(d).take(seq).enumerate() {
        for (p, &x) in key[..hd].iter().enumerate() {
            kt[p * seq + j] = x;
        }
    }
    matmul_nn(&q[off..], d, &kt, seq, s, seq, seq, seq, hd, Some(scale));
    for row in s.chunks_exact_mut(seq) {
        for (x, &m) in row.iter_mut().zip(bias) {
            *x += m;
        }
        softmax_row(row);
    }
    matmul_nn(s, seq, &v[off..], d, out, ldo, seq, hd, seq, None);
}
