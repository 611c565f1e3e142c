//! Linear weights reordered at load for the wasm kernels (`simd::pack_nt`, what the browser's
//! workers keep in memory): the product on the packed weight equals the row-major one bit
//! for bit, single-threaded and split over threads, through `CpuBackend::linear_simd` too;
//! shapes that are not whole 4 × 4 blocks stay row-major.

mod common;

use candle_core::{Device, Tensor};
use webformer::engine::backend::cpu::{par, simd, CpuBackend};

/// Deterministic values in [-1, 1).
fn rand(seed: u64, len: usize) -> Vec<f32> {
    common::values(len, seed, 1.0)
}

fn same_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!("{what}: element {i} is {} packed, {} row-major", got[i], want[i]);
    }
}

#[test]
fn layout_is_four_by_four_blocks_of_four_rows() {
    let (m, k) = (8, 12);
    let b: Vec<f32> = (0..m * k).map(|i| i as f32).collect();
    let p = simd::pack_nt(&b, m, k);
    assert_eq!(p.len(), m * k);
    // [m/4][k/4][4 rows][4 values along k]
    for t in 0..m / 4 {
        for s in 0..k / 4 {
            for q in 0..4 {
                for l in 0..4 {
                    let at = ((t * (k / 4) + s) * 4 + q) * 4 + l;
                    assert_eq!(
                        p[at],
                        b[(4 * t + q) * k + 4 * s + l],
                        "tile {t} block {s} row {q} lane {l}"
                    );
                }
            }
        }
    }
}

#[test]
fn only_whole_blocks_are_packed() {
    assert!(simd::packs_nt(4, 4) && simd::packs_nt(1536, 384));
    for (m, k) in [(0, 4), (4, 0), (2, 4), (6, 8), (8, 6), (3, 7)] {
        assert!(!simd::packs_nt(m, k), "[{m}, {k}]");
    }
    let be = CpuBackend::new();
    // A 2-class head and an odd width stay [out, in]; whole blocks become [out/4, in/4, 16].
    assert_eq!(
        be.pack_linear_simd(&rand(1, 2 * 384), &[2, 384]).unwrap().dims(),
        &[2, 384]
    );
    assert_eq!(
        be.pack_linear_simd(&rand(1, 8 * 7), &[8, 7]).unwrap().dims(),
        &[8, 7]
    );
    assert_eq!(
        be.pack_linear_simd(&rand(1, 8 * 12), &[8, 12]).unwrap().dims(),
        &[2, 3, 16]
    );
}

#[test]
fn packed_product_equals_row_major_bit_for_bit() {
    let mut seed = 10;
    for &n in &[1usize, 2, 3, 10, 33] {
        for &(m, k) in &[(4usize, 4usize), (8, 12), (12, 384), (100, 36), (1536, 16)] {
            for (bias_on, gelu, scale) in [
                (false, false, None),
                (true, false, None),
                (true, true, None),
                (false, false, Some(0.125)),
            ] {
                seed += 1;
                let (lda, ldc) = (k + 5, m + 3);
                let a = rand(seed, n * lda);
                let b = rand(seed + 1000, m * k);
                let bias = rand(seed + 2000, m);
                let ep = simd::Epilogue {
                    scale,
                    col_bias: bias_on.then_some(&bias[..]),
                    gelu,
                };
                let mut want = vec![f32::NAN; n * ldc];
                simd::matmul_nt(&a, lda, &b, k, &mut want, ldc, n, m, k, ep);
                let packed = simd::pack_nt(&b, m, k);
                let mut got = vec![f32::NAN; n * ldc];
                simd::matmul_nt_packed(&a, lda, &packed, &mut got, ldc, n, m, k, ep);
                // NaN padding between rows compares equal bit for bit: never written.
                same_bits(
                    &format!("{n}×{m}×{k} bias {bias_on} gelu {gelu} scale {scale:?}"),
                    &got,
                    &want,
                );
            }
        }
    }
}

#[test]
fn packed_product_splits_over_threads_and_matches() {
    for &(n, m, k) in &[(1usize, 1536usize, 384usize), (7, 388, 772), (40, 96, 1536)] {
        let (a, b, bias) = (rand(1, n * k), rand(2, m * k), rand(3, m));
        let packed = simd::pack_nt(&b, m, k);
        for gelu in [false, true] {
            let ep = simd::Epilogue {
                col_bias: Some(&bias),
                gelu,
                ..simd::Epilogue::NONE
            };
            let mut want = vec![0f32; n * m];
            simd::matmul_nt(&a, k, &b, k, &mut want, m, n, m, k, ep);
            let mut got = vec![0f32; n * m];
            let split = rayon::ThreadPoolBuilder::new()
                .num_threads(3)
                .build()
                .unwrap()
                .install(|| {
                    par::matmul_nt_packed(&a, k, &packed, &mut got, m, n, m, k, ep);
                    par::threads_for(n * m * k)
                });
            assert!(split > 1, "{n}×{m}×{k} should split, got {split} thread(s)");
            same_bits(&format!("threaded {n}×{m}×{k} gelu {gelu}"), &got, &want);
        }
    }
}

#[test]
fn linear_simd_on_a_packed_weight_equals_the_row_major_one() {
    let be = CpuBackend::new();
    for (n, k, m) in [(1, 384, 1536), (10, 1536, 384), (5, 8, 12)] {
        let w = rand(5, m * k);
        let x = Tensor::from_vec(rand(6, n * k), (n, k), &Device::Cpu).unwrap();
        let b = Tensor::from_vec(rand(7, m), m, &Device::Cpu).unwrap();
        let flat = Tensor::from_vec(w.clone(), (m, k), &Device::Cpu).unwrap();
        let packed = be.pack_linear_simd(&w, &[m, k]).unwrap();
        assert_eq!(packed.rank(), 3);
        for gelu in [false, true] {
            let want = be.linear_simd(&x, &flat, Some(&b), gelu).unwrap();
            let got = be.linear_simd(&x, &packed, Some(&b), gelu).unwrap();
            assert_eq!(got.dims(), &[n, m]);
            same_bits(
                &format!("linear {n}×{k}→{m} gelu {gelu}"),
                &got.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                &want.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            );
        }
        // A wrong input width is an error, not a read past the weight.
        let bad = Tensor::from_vec(rand(8, n * (k + 4)), (n, k + 4), &Device::Cpu).unwrap();
        assert!(be.linear_simd(&bad, &packed, Some(&b), false).is_err());
    }
}
