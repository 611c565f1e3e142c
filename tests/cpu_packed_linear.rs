//! Linear weights reordered at load for the wasm kernels (`simd::pack_nt`, what the browser's
//! workers keep in memory): the product on the packed weight sums each output as one chain
//! in the order of `k` (checked bit for bit against a scalar loop), agrees with the
//! row-major kernel to rounding, and is the same single-threaded and split over threads,
//! through `CpuBackend::linear_simd` too; widths that are not whole vectors stay row-major.

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

/// What the packed kernel computes natively (the portable build multiplies, then adds):
/// `epilogue(Σ_p a[i, p] · b[j, p])` summed in the order of `p`, scalar.
#[allow(clippy::too_many_arguments)]
fn chain(a: &[f32], lda: usize, b: &[f32], k: usize, n: usize, m: usize, ep: &simd::Epilogue) -> Vec<f32> {
    let mut out = Vec::with_capacity(n * m);
    for i in 0..n {
        for j in 0..m {
            let mut s = 0f32;
            for p in 0..k {
                s += a[i * lda + p] * b[j * k + p];
            }
            if let Some(f) = ep.scale {
                s *= f;
            }
            if let Some(bias) = ep.col_bias {
                s += bias[j];
            }
            out.push(s);
        }
    }
    out
}

#[test]
fn layout_is_panels_of_rows_stored_transposed() {
    // m = 20: one whole panel of 12 rows, then a last one of 8.
    let (m, k) = (20, 5);
    assert_eq!(simd::PANEL, 12);
    let b: Vec<f32> = (0..m * k).map(|i| i as f32).collect();
    let p = simd::pack_nt(&b, m, k);
    assert_eq!(p.len(), m * k);
    for j in 0..m {
        let (j0, width) = if j < 12 { (0, 12) } else { (12, 8) };
        for q in 0..k {
            assert_eq!(
                p[j0 * k + q * width + (j - j0)],
                b[j * k + q],
                "row {j} value {q}"
            );
        }
    }
}

#[test]
fn only_whole_vectors_of_rows_are_packed() {
    assert!(simd::packs_nt(4, 1) && simd::packs_nt(1536, 384) && simd::packs_nt(20, 7));
    for (m, k) in [(0, 4), (4, 0), (2, 4), (6, 8), (3, 7)] {
        assert!(!simd::packs_nt(m, k), "[{m}, {k}]");
    }
    let be = CpuBackend::new();
    // A 2-class head and an odd width stay [out, in]; whole vectors become [out/4, in, 4].
    assert_eq!(
        be.pack_linear_simd(&rand(1, 2 * 384), &[2, 384]).unwrap().dims(),
        &[2, 384]
    );
    assert_eq!(
        be.pack_linear_simd(&rand(1, 6 * 7), &[6, 7]).unwrap().dims(),
        &[6, 7]
    );
    assert_eq!(
        be.pack_linear_simd(&rand(1, 8 * 7), &[8, 7]).unwrap().dims(),
        &[2, 7, 4]
    );
}

/// Largest |got - want| over the rows' first `m` values, relative to max(1, |want|).
fn max_rel(got: &[f32], want: &[f32]) -> f32 {
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs() / w.abs().max(1.0))
        .fold(0.0, f32::max)
}

#[test]
fn packed_product_is_each_outputs_chain_bit_for_bit() {
    let mut seed = 10;
    // Rows: the 3-row strips and both remainders; columns: whole panels and last panels of
    // 4 and 8; k: odd, short, and long enough for several panel groups.
    for &n in &[1usize, 2, 3, 4, 10, 33] {
        for &(m, k) in &[
            (4usize, 4usize),
            (8, 13),
            (12, 384),
            (100, 36),
            (1536, 16),
            (388, 772),
        ] {
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
                let what = format!("{n}×{m}×{k} bias {bias_on} gelu {gelu} scale {scale:?}");
                let packed = simd::pack_nt(&b, m, k);
                let mut got = vec![f32::NAN; n * ldc];
                simd::matmul_nt_packed(&a, lda, &packed, &mut got, ldc, n, m, k, ep);
                // The padding between rows stays NaN: never written.
                assert!(
                    got.chunks_exact(ldc)
                        .all(|row| row[m..].iter().all(|x| x.is_nan())),
                    "{what}: wrote past a row"
                );
                let got: Vec<f32> = got.chunks_exact(ldc).flat_map(|row| row[..m].to_vec()).collect();
                let mut want = chain(&a, lda, &b, k, n, m, &ep);
                if gelu {
                    simd::gelu_inplace(&mut want);
                }
                same_bits(&what, &got, &want);
                // And the row-major (dot-product) kernel agrees to rounding.
                let mut rm = vec![f32::NAN; n * ldc];
                simd::matmul_nt(&a, lda, &b, k, &mut rm, ldc, n, m, k, ep);
                let rm: Vec<f32> = rm.chunks_exact(ldc).flat_map(|row| row[..m].to_vec()).collect();
                let err = max_rel(&got, &rm);
                assert!(
                    err < 1e-5 * (k as f32).sqrt(),
                    "{what}: {err} from the row-major kernel"
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
            simd::matmul_nt_packed(&a, k, &packed, &mut want, m, n, m, k, ep);
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
fn linear_simd_on_a_packed_weight_is_the_packed_product() {
    let be = CpuBackend::new();
    for (n, k, m) in [(1, 384, 1536), (10, 1536, 384), (5, 8, 12)] {
        let w = rand(5, m * k);
        let x = Tensor::from_vec(rand(6, n * k), (n, k), &Device::Cpu).unwrap();
        let b = Tensor::from_vec(rand(7, m), m, &Device::Cpu).unwrap();
        let flat = Tensor::from_vec(w.clone(), (m, k), &Device::Cpu).unwrap();
        let packed = be.pack_linear_simd(&w, &[m, k]).unwrap();
        assert_eq!(packed.rank(), 3);
        let bias = b.to_vec1::<f32>().unwrap();
        for gelu in [false, true] {
            let ep = simd::Epilogue {
                col_bias: Some(&bias),
                gelu,
                ..simd::Epilogue::NONE
            };
            let xs = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let mut want = chain(&xs, k, &w, k, n, m, &ep);
            if gelu {
                simd::gelu_inplace(&mut want);
            }
            let got = be.linear_simd(&x, &packed, Some(&b), gelu).unwrap();
            assert_eq!(got.dims(), &[n, m]);
            let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let what = format!("linear {n}×{k}→{m} gelu {gelu}");
            same_bits(&what, &got, &want);
            let rm = be.linear_simd(&x, &flat, Some(&b), gelu).unwrap();
            let err = max_rel(&got, &rm.flatten_all().unwrap().to_vec1::<f32>().unwrap());
            assert!(
                err < 1e-5 * (k as f32).sqrt(),
                "{what}: {err} from the row-major weight"
            );
        }
        // A wrong input width is an error, not a read past the weight.
        let bad = Tensor::from_vec(rand(8, n * (k + 4)), (n, k + 4), &Device::Cpu).unwrap();
        assert!(be.linear_simd(&bad, &packed, Some(&b), false).is_err());
    }
}
