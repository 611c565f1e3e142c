//! The native packed-weight linear kernel (`engine::backend::cpu::avx2`, x86-64 with
//! AVX2 + FMA): odd shapes across its row, input and panel blocks, bias and GELU, against
//! an f64 reference; thread splits equal to one thread bit for bit; and the backend's
//! `linear` on a packed weight against candle's matmul.
#![cfg(target_arch = "x86_64")]

mod common;

use candle_core::{Device, Tensor};
use webformer::engine::backend::cpu::avx2::Tile;
use webformer::engine::backend::cpu::{avx2, simd, CpuBackend};
use webformer::engine::backend::Backend;

fn reference(
    x: &[f32],
    w: &[f32],
    n: usize,
    inp: usize,
    out: usize,
    bias: Option<&[f32]>,
    gelu: bool,
) -> Vec<f64> {
    let mut y = vec![0f64; n * out];
    for i in 0..n {
        for j in 0..out {
            let mut s: f64 = (0..inp)
                .map(|p| x[i * inp + p] as f64 * w[j * inp + p] as f64)
                .sum();
            if let Some(b) = bias {
                s += b[j] as f64;
            }
            y[i * out + j] = if gelu { common::gelu64(s) } else { s };
        }
    }
    y
}

fn need_kernel() -> bool {
    if !avx2::available() {
        eprintln!("this CPU lacks AVX2/FMA: the packed kernel never runs here, so there is nothing to check");
    }
    avx2::available()
}

/// The micro-tiles this CPU runs; says so where the AVX-512 one cannot be checked here.
fn tiles() -> Vec<Tile> {
    if !Tile::Avx512.available() {
        eprintln!("this CPU lacks AVX-512F: only the AVX2 tile is checked here");
    }
    [Tile::Avx2, Tile::Avx512]
        .into_iter()
        .filter(|t| t.available())
        .collect()
}

#[test]
fn packed_linear_matches_reference_across_blocks() {
    if !need_kernel() {
        return;
    }
    let mut seed = 10;
    // Rows around the 6- and 14-row tiles and the 196-row block; inputs around the
    // 256-input block; outputs as one panel, a pair, a pair and one more, and a partial last
    // panel (20).
    for &n in &[1usize, 5, 6, 7, 14, 15, 29, 197] {
        for &inp in &[1usize, 7, 256, 300, 600] {
            for &out in &[16usize, 20, 32, 48] {
                for (bias_on, gelu) in [(false, false), (true, false), (true, true)] {
                    seed += 1;
                    let x = common::values(n * inp, seed, 1.0);
                    let w = common::values(out * inp, seed + 500, 1.0);
                    let b = common::values(out, seed + 900, 1.0);
                    let bias = bias_on.then_some(&b[..]);
                    for tile in tiles() {
                        let got =
                            avx2::linear_with(tile, &x, n, inp, &avx2::pack(&w, out, inp), out, bias, gelu);
                        let want = reference(&x, &w, n, inp, out, bias, gelu);
                        let err = got
                            .iter()
                            .zip(&want)
                            .map(|(&g, &w)| (g as f64 - w).abs())
                            .fold(0.0, f64::max);
                        let tol = 2e-6 * (inp as f64).sqrt().max(1.0);
                        assert!(
                        err < tol,
                        "{tile:?}: n {n} inp {inp} out {out} bias {bias_on} gelu {gelu}: max err {err} (tol {tol})"
                    );
                    }
                }
            }
        }
    }
}

#[test]
fn packed_linear_threads_equal_one_thread_bit_for_bit() {
    if !need_kernel() {
        return;
    }
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let three = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
    // Few rows: the threads split the panels; many: they split the rows.
    for (n, inp, out) in [(37, 520, 3 * 16 * 7), (700, 300, 80)] {
        let x = common::values(n * inp, 1, 1.0);
        let w = avx2::pack(&common::values(out * inp, 2, 1.0), out, inp);
        let b = common::values(out, 3, 1.0);
        for tile in tiles() {
            let a = one.install(|| avx2::linear_with(tile, &x, n, inp, &w, out, Some(&b), true));
            let c = three.install(|| avx2::linear_with(tile, &x, n, inp, &w, out, Some(&b), true));
            assert!(
                a.iter().zip(&c).all(|(p, q)| p.to_bits() == q.to_bits()),
                "{tile:?} [{n}, {inp}] · [{out}, {inp}]ᵀ"
            );
        }
    }
}

#[test]
fn avx512_tile_equals_avx2_tile_bit_for_bit() {
    if !need_kernel() {
        return;
    }
    if !Tile::Avx512.available() {
        eprintln!(
            "this CPU lacks AVX-512F: the AVX-512 tile never runs here, so there is nothing to compare"
        );
        return;
    }
    let mut seed = 70;
    for &(n, inp, out) in &[
        (1usize, 384usize, 384usize),
        (11, 300, 20),
        (14, 768, 48),
        (25, 520, 64),
        (211, 257, 80),
    ] {
        for (bias_on, gelu) in [(false, false), (true, true)] {
            seed += 1;
            let x = common::values(n * inp, seed, 1.0);
            let w = avx2::pack(&common::values(out * inp, seed + 1, 1.0), out, inp);
            let b = common::values(out, seed + 2, 1.0);
            let bias = bias_on.then_some(&b[..]);
            let a = avx2::linear_with(Tile::Avx2, &x, n, inp, &w, out, bias, gelu);
            let c = avx2::linear_with(Tile::Avx512, &x, n, inp, &w, out, bias, gelu);
            let same = a.iter().zip(&c).all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(same, "[{n}, {inp}] · [{out}, {inp}]ᵀ, bias {bias_on} gelu {gelu}");
        }
    }
}

#[test]
fn backend_linear_on_packed_weights_matches_candle() {
    let be = CpuBackend::new();
    for &(n, inp, out) in &[(3usize, 40usize, 32usize), (20, 384, 1536), (9, 300, 20)] {
        let x = common::values(n * inp, 4, 1.0);
        let w = common::values(out * inp, 5, 0.1);
        let b = common::values(out, 6, 1.0);
        let xt = be.upload(&x, &[n, inp]).unwrap();
        let wt = be.upload_linear_weight(&w, &[out, inp]).unwrap();
        // Packed where the kernel is chosen and `out` fills whole panels; else a plain view.
        let packed_here = avx2::packs(out, inp);
        assert_eq!(wt.rank() == 3, packed_here, "[{out}, {inp}]");
        let bt = be.upload(&b, &[out]).unwrap();
        let ours = be.download(&be.linear(&xt, &wt, Some(&bt)).unwrap()).unwrap();
        let ours_gelu = be
            .download(&be.linear_gelu(&xt, &wt, Some(&bt)).unwrap())
            .unwrap();
        let cx = Tensor::from_slice(&x, (n, inp), &Device::Cpu).unwrap();
        let cw = Tensor::from_slice(&w, (out, inp), &Device::Cpu).unwrap();
        let cb = Tensor::from_slice(&b, out, &Device::Cpu).unwrap();
        let want = cx.matmul(&cw.t().unwrap()).unwrap().broadcast_add(&cb).unwrap();
        let want_gelu = want.gelu_erf().unwrap();
        for (got, want) in [(ours, want), (ours_gelu, want_gelu)] {
            let want = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let err = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(
                err < 2e-5,
                "[{n}, {inp}] · [{out}, {inp}]ᵀ: max diff {err} (packed: {packed_here})"
            );
        }
    }
}

#[test]
fn packed_attention_matches_the_portable_kernels() {
    if !need_kernel() {
        return;
    }
    let mut seed = 100;
    for &(batch, seq, heads, hd) in &[
        (1usize, 1usize, 1usize, 8usize),
        (2, 5, 3, 4),
        (1, 17, 2, 64),
        (3, 33, 4, 20),
        (2, 130, 2, 32),
    ] {
        seed += 1;
        let d = heads * hd;
        let q = common::values(batch * seq * d, seed, 2.0);
        let k = common::values(batch * seq * d, seed + 1, 2.0);
        let v = common::values(batch * seq * d, seed + 2, 1.0);
        // The last key of every sequence but the first is masked out, as padding is.
        let bias: Vec<f32> = (0..batch * seq)
            .map(|r| {
                if r >= seq && r % seq == seq - 1 && seq > 1 {
                    f32::MIN
                } else {
                    0.0
                }
            })
            .collect();
        let mut p_want = vec![0f32; batch * heads * seq * seq];
        let mut p_got = vec![0f32; batch * heads * seq * seq];
        let want = simd::attention(&q, &k, &v, batch, seq, heads, &bias, Some(&mut p_want));
        let got = avx2::attention(&q, &k, &v, batch, seq, heads, &bias, Some(&mut p_got));
        let without = avx2::attention(&q, &k, &v, batch, seq, heads, &bias, None);
        let diff = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(
            diff(&got, &want) < 2e-6,
            "{batch}×{seq}, {heads}×{hd}: context differs by {}",
            diff(&got, &want)
        );
        assert!(
            diff(&p_got, &p_want) < 2e-6,
            "{batch}×{seq}, {heads}×{hd}: probabilities differ by {}",
            diff(&p_got, &p_want)
        );
        assert_eq!(got, without, "asking for the probabilities changes the context");
        // Masked keys get exactly zero probability.
        for (j, row) in p_got.chunks_exact(seq).enumerate() {
            let b = j / (heads * seq);
            if b > 0 && seq > 1 {
                assert_eq!(row[seq - 1], 0.0);
            }
        }
    }
}

#[test]
fn avx2_layer_norm_matches_candle() {
    if !need_kernel() {
        return;
    }
    for &(rows, d) in &[(1usize, 1usize), (3, 7), (5, 384), (2, 771)] {
        let x: Vec<f32> = common::values(rows * d, 7, 3.0).iter().map(|v| v + 1.5).collect();
        let g = common::values(d, 8, 1.0);
        let b = common::values(d, 9, 1.0);
        let mut y = vec![0f32; rows * d];
        avx2::layer_norm(&x, &mut y, d, &g, &b, 1e-12);
        let cx = Tensor::from_slice(&x, (rows, d), &Device::Cpu).unwrap();
        let want = candle_nn::ops::layer_norm(
            &cx,
            &Tensor::from_slice(&g, d, &Device::Cpu).unwrap(),
            &Tensor::from_slice(&b, d, &Device::Cpu).unwrap(),
            1e-12,
        )
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
        let err = y
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err < 1e-5, "[{rows}, {d}]: max diff {err}");
    }
}
