//! The CPU backend's own kernels (`engine::backend::cpu::simd`, what the wasm worker runs)
//! checked natively: the same blocking and edge-tile code runs here on the portable 4-lane
//! type. Odd shapes (rows, columns and k not multiples of the tiles), strides wider than
//! the rows, bias and GELU, against an f64 reference and against candle's ops (what native
//! builds run).

mod common;

use candle_core::{Device, Tensor};
use webformer::engine::backend::cpu::{simd, CpuBackend};
use webformer::engine::backend::{AttentionShape, Backend};

/// Deterministic values in [-1, 1).
fn rand(seed: u64, len: usize) -> Vec<f32> {
    common::values(len, seed, 1.0)
}

#[allow(clippy::too_many_arguments)]
fn reference_nt(
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    n: usize,
    m: usize,
    k: usize,
    bias: Option<&[f32]>,
    gelu: bool,
) -> Vec<f64> {
    let mut out = vec![0f64; n * m];
    for i in 0..n {
        for j in 0..m {
            let mut s = 0f64;
            for p in 0..k {
                s += a[i * lda + p] as f64 * b[j * ldb + p] as f64;
            }
            if let Some(bias) = bias {
                s += bias[j] as f64;
            }
            out[i * m + j] = if gelu { common::gelu64(s) } else { s };
        }
    }
    out
}

fn max_err(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w).abs())
        .fold(0.0, f64::max)
}

#[test]
fn matmul_nt_matches_reference_on_odd_shapes() {
    let mut seed = 1;
    for &n in &[1usize, 2, 3, 5, 8] {
        for &m in &[1usize, 2, 3, 4, 5, 7, 9, 16] {
            for &k in &[1usize, 3, 4, 5, 8, 17, 64] {
                for (bias_on, gelu) in [(false, false), (true, false), (true, true), (false, true)] {
                    seed += 1;
                    let (lda, ldb, ldc) = (k + 3, k + 1, m + 2);
                    let a = rand(seed, n * lda);
                    let b = rand(seed + 1000, m * ldb);
                    let bias = rand(seed + 2000, m);
                    let mut c = vec![f32::NAN; n * ldc];
                    let ep = simd::Epilogue {
                        col_bias: bias_on.then_some(&bias[..]),
                        gelu,
                        ..simd::Epilogue::NONE
                    };
                    simd::matmul_nt(&a, lda, &b, ldb, &mut c, ldc, n, m, k, ep);
                    let want = reference_nt(&a, lda, &b, ldb, n, m, k, bias_on.then_some(&bias[..]), gelu);
                    let got: Vec<f32> = (0..n).flat_map(|i| c[i * ldc..i * ldc + m].to_vec()).collect();
                    let e = max_err(&got, &want);
                    assert!(
                        e < 1e-5,
                        "n {n} m {m} k {k} bias {bias_on} gelu {gelu}: max err {e}"
                    );
                    // The padding between rows is never written.
                    for i in 0..n {
                        assert!(c[i * ldc + m..(i + 1) * ldc].iter().all(|x| x.is_nan()));
                    }
                }
            }
        }
    }
}

#[test]
fn matmul_nt_scale() {
    let (n, m, k) = (5, 6, 7);
    let a = rand(7, n * k);
    let b = rand(8, m * k);
    let mut c = vec![0f32; n * m];
    let ep = simd::Epilogue {
        scale: Some(0.25),
        ..simd::Epilogue::NONE
    };
    simd::matmul_nt(&a, k, &b, k, &mut c, m, n, m, k, ep);
    let want: Vec<f64> = reference_nt(&a, k, &b, k, n, m, k, None, false)
        .iter()
        .map(|x| x * 0.25)
        .collect();
    assert!(max_err(&c, &want) < 1e-6);
}

#[test]
fn matmul_nn_matches_reference_on_odd_shapes() {
    let mut seed = 50;
    for &n in &[1usize, 2, 3, 4, 5, 9] {
        for &m in &[1usize, 3, 4, 5, 8, 12, 13, 32] {
            for &k in &[1usize, 2, 5, 16, 33] {
                seed += 1;
                let (lda, ldb, ldc) = (k + 2, m + 5, m + 1);
                let a = rand(seed, n * lda);
                let b = rand(seed + 99, k * ldb);
                let mut c = vec![f32::NAN; n * ldc];
                simd::matmul_nn(&a, lda, &b, ldb, &mut c, ldc, n, m, k, None);
                for i in 0..n {
                    for j in 0..m {
                        let want: f64 = (0..k)
                            .map(|p| a[i * lda + p] as f64 * b[p * ldb + j] as f64)
                            .sum();
                        let e = (c[i * ldc + j] as f64 - want).abs();
                        assert!(
                            e < 1e-5,
                            "n {n} m {m} k {k} at ({i}, {j}): {} vs {want}",
                            c[i * ldc + j]
                        );
                    }
                    assert!(c[i * ldc + m..(i + 1) * ldc].iter().all(|x| x.is_nan()));
                }
            }
        }
    }
}

#[test]
fn gelu_and_softmax_accuracy() {
    // GELU over [-10, 10] against f64.
    let xs: Vec<f32> = (0..20001).map(|i| -10.0 + i as f32 * 0.001).collect();
    let mut ys = xs.clone();
    simd::gelu_inplace(&mut ys);
    for (&x, &y) in xs.iter().zip(&ys) {
        let want = common::gelu64(x as f64);
        assert!(
            (y as f64 - want).abs() < 2e-6 * (1.0 + want.abs()),
            "gelu({x}) = {y}, want {want}"
        );
    }
    // Four vectors at a time, one, and the scalar tail all give each element's own GELU,
    // bit for bit, whatever the slice length and offset.
    for len in [1usize, 5, 16, 17, 37, 64] {
        let src: Vec<f32> = rand(len as u64 + 90, len).iter().map(|x| x * 12.0).collect();
        let mut got = src.clone();
        simd::gelu_inplace(&mut got);
        for (i, (&x, &g)) in src.iter().zip(&got).enumerate() {
            assert_eq!(
                g.to_bits(),
                simd::gelu_scalar(x).to_bits(),
                "len {len}, element {i}: gelu({x})"
            );
        }
    }
    // Softmax rows of odd lengths, with a masked entry (f32::MIN added) that must be 0.
    for len in [1usize, 3, 4, 7, 13, 37, 128] {
        let mut row = rand(len as u64, len)
            .iter()
            .map(|x| x * 20.0)
            .collect::<Vec<f32>>();
        if len > 1 {
            row[len / 2] += f32::MIN;
        }
        let orig = row.clone();
        simd::softmax_row(&mut row);
        let mx = orig.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let sum: f64 = orig.iter().map(|&x| (x as f64 - mx).exp()).sum();
        for (&p, &x) in row.iter().zip(&orig) {
            let want = (x as f64 - mx).exp() / sum;
            assert!((p as f64 - want).abs() < 1e-6, "len {len}: {p} vs {want}");
        }
        if len > 1 {
            assert_eq!(row[len / 2], 0.0);
        }
    }
}

/// `max |a - b| <= tol · max(1, max |b|)`: the kernels sum in another order than candle's.
fn close(a: &Tensor, b: &Tensor, tol: f32, what: &str) {
    assert_eq!(a.dims(), b.dims(), "{what}");
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let e = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    let scale = b.iter().fold(1f32, |m, x| m.max(x.abs()));
    assert!(e <= tol * scale, "{what}: max |diff| {e} (largest value {scale})");
}

#[test]
fn backend_simd_path_matches_candle() {
    let be = CpuBackend::new();
    let t = |seed, shape: &[usize]| {
        let n: usize = shape.iter().product();
        Tensor::from_vec(rand(seed, n), shape, &Device::Cpu).unwrap()
    };
    // linear, linear + GELU, with and without bias, odd shapes.
    for (n, k, m) in [(1, 7, 3), (10, 384, 384), (13, 33, 47), (3, 64, 1536)] {
        let x = t(1, &[n, k]);
        let w = t(2, &[m, k]);
        let b = t(3, &[m]);
        close(
            &be.linear_simd(&x, &w, Some(&b), false).unwrap(),
            &be.linear(&x, &w, Some(&b)).unwrap(),
            1e-5,
            "linear",
        );
        close(
            &be.linear_simd(&x, &w, None, false).unwrap(),
            &be.linear(&x, &w, None).unwrap(),
            1e-5,
            "linear, no bias",
        );
        close(
            &be.linear_simd(&x, &w, Some(&b), true).unwrap(),
            &be.gelu(&be.linear(&x, &w, Some(&b)).unwrap()).unwrap(),
            1e-5,
            "linear_gelu",
        );
        // A transposed (non-contiguous) weight is accepted.
        let wt = t(4, &[k, m]).t().unwrap();
        close(
            &be.linear_simd(&x, &wt, None, false).unwrap(),
            &be.linear(&x, &wt, None).unwrap(),
            1e-5,
            "linear, strided w",
        );
    }
    let x = t(5, &[6, 37]);
    close(&be.gelu_simd(&x).unwrap(), &be.gelu(&x).unwrap(), 1e-6, "gelu");
    // LayerNorm, rows of 5 and of 384.
    for d in [5usize, 384] {
        let x = t(6, &[7, d]);
        let (g, b) = (t(7, &[d]), t(8, &[d]));
        close(
            &be.layer_norm_simd(&x, &g, &b, 1e-12).unwrap(),
            &be.layer_norm(&x, &g, &b, 1e-12).unwrap(),
            1e-5,
            "layer_norm",
        );
    }
    // Attention: 2 sequences of 5 tokens, 3 heads of 4 (and 2 of 32), the second padded.
    for (heads, hd) in [(3usize, 4usize), (2, 32)] {
        let (batch, seq) = (2, 5);
        let d = heads * hd;
        let (q, k, v) = (
            t(9, &[batch * seq, d]),
            t(10, &[batch * seq, d]),
            t(11, &[batch * seq, d]),
        );
        let mask = [1., 1., 1., 1., 1., 1., 1., 1., 0., 0.];
        let shape = AttentionShape { batch, seq, heads };
        let (c1, p1) = be.attention_simd(&q, &k, &v, shape, &mask, true).unwrap();
        let (c2, p2) = be.attention(&q, &k, &v, shape, &mask, true).unwrap();
        close(&c1, &c2, 1e-5, "attention context");
        close(&p1.unwrap(), &p2.unwrap(), 1e-6, "attention probabilities");
        let (c3, p3) = be.attention_simd(&q, &k, &v, shape, &mask, false).unwrap();
        assert!(p3.is_none());
        close(&c3, &c1, 0.0, "attention without probabilities");
    }
}
