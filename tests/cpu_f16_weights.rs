//! Linear weights kept in f16 for the wasm kernels (`simd::pack_nt_f16`, what the browser's
//! workers keep for an f16 checkpoint): the widening is exact, and the product on the f16
//! panels is the f32 packed product on the same values bit for bit, single-threaded, split
//! over threads and through `CpuBackend::linear_simd`, at half the bytes; rows gathered
//! from an f16 embedding table are the f32 table's. What cannot be kept in f16 exactly
//! (non-finite values, widths that are not whole vectors) stays f32.

mod common;

use candle_core::{DType, Device, Tensor};
use half::f16;
use webformer::engine::backend::cpu::{par, simd, CpuBackend};

/// Deterministic values exact in f16 (checkpoint-like, including tiny subnormal-half ones).
fn halves(seed: u64, len: usize) -> Vec<f32> {
    common::values(len, seed, 1.0)
        .into_iter()
        .enumerate()
        .map(|(i, x)| {
            let x = if i % 7 == 0 { x * 1e-5 } else { x * 0.1 };
            f16::from_f32(x).to_f32()
        })
        .collect()
}

fn same_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!("{what}: element {i} is {} from f16, {} from f32", got[i], want[i]);
    }
}

#[test]
fn widening_is_exact_for_every_finite_half() {
    let src: Vec<f16> = (0..=u16::MAX)
        .map(f16::from_bits)
        .filter(|h| h.is_finite())
        .collect();
    // Odd lengths and offsets too, so the vector loop and the tail both run.
    for (start, len) in [(0, src.len()), (3, 1001), (8, 7), (0, 0)] {
        let part = &src[start..start + len];
        let mut got = vec![f32::NAN; len];
        simd::widen_f16(part, &mut got);
        for (h, g) in part.iter().zip(&got) {
            assert_eq!(g.to_bits(), h.to_f32().to_bits(), "widen({:#06x})", h.to_bits());
        }
    }
}

#[test]
fn f16_panels_give_the_f32_packed_product_bit_for_bit() {
    // m with last panels of 12, 4 and 8 columns, and over several groups of panels (each
    // widened on its own: 60 columns a group at k = 384, 12 at k = 1536); k with and
    // without a vector tail; rows across strip boundaries; an output wider than m (its
    // padding must stay untouched).
    for &(m, k) in &[(36, 384), (132, 384), (40, 7), (44, 33), (40, 1536)] {
        let b = halves(m as u64, m * k);
        let packed = simd::pack_nt(&b, m, k);
        let packed16 = simd::pack_nt_f16(&b, m, k);
        assert_eq!(packed16.len(), packed.len());
        for n in [1usize, 2, 3, 10, 33] {
            let a = common::values(n * k, 7 + n as u64, 1.0);
            let bias = common::values(m, 9, 1.0);
            for (bias_on, gelu) in [(false, false), (true, false), (true, true)] {
                let ep = simd::Epilogue {
                    col_bias: bias_on.then_some(&bias[..]),
                    gelu,
                    ..simd::Epilogue::NONE
                };
                let ldc = m + 3;
                let mut want = vec![5f32; n * ldc];
                simd::matmul_nt_packed(&a, k, &packed, &mut want, ldc, n, m, k, ep);
                let mut got = vec![5f32; n * ldc];
                simd::matmul_nt_packed(&a, k, &packed16, &mut got, ldc, n, m, k, ep);
                same_bits(&format!("{n}×{m}×{k} bias {bias_on} gelu {gelu}"), &got, &want);
            }
        }
    }
}

#[test]
fn f16_panels_split_over_threads_and_match() {
    let (n, m, k) = (20, 1536, 384);
    let b = halves(3, m * k);
    let packed16 = simd::pack_nt_f16(&b, m, k);
    let a = common::values(n * k, 4, 1.0);
    let bias = common::values(m, 5, 1.0);
    let ep = simd::Epilogue {
        col_bias: Some(&bias),
        gelu: true,
        ..simd::Epilogue::NONE
    };
    let mut want = vec![0f32; n * m];
    simd::matmul_nt_packed(&a, k, &packed16, &mut want, m, n, m, k, ep);
    let mut got = vec![0f32; n * m];
    let split = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap()
        .install(|| {
            par::matmul_nt_packed(&a, k, &packed16, &mut got, m, n, m, k, ep);
            par::threads_for(n * m * k)
        });
    assert!(split > 1, "{n}×{m}×{k} should split");
    same_bits("threaded", &got, &want);
}

#[test]
fn the_backend_keeps_f16_weights_in_half_the_bytes_with_the_same_results() {
    let be = CpuBackend::new();
    let (n, m, k) = (5, 48, 64);
    let w = halves(11, m * k);
    let w16 = be.pack_linear_simd_f16(&w, &[m, k]).unwrap();
    let w32 = be.pack_linear_simd(&w, &[m, k]).unwrap();
    assert_eq!(w16.dtype(), DType::F16);
    assert_eq!(w16.dims(), w32.dims());
    let x = Tensor::from_vec(common::values(n * k, 12, 1.0), (n, k), &Device::Cpu).unwrap();
    let bias = Tensor::from_vec(common::values(m, 13, 1.0), m, &Device::Cpu).unwrap();
    for gelu in [false, true] {
        let got = be.linear_simd(&x, &w16, Some(&bias), gelu).unwrap();
        let want = be.linear_simd(&x, &w32, Some(&bias), gelu).unwrap();
        let (got, want) = (
            got.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            want.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        same_bits(&format!("linear_simd gelu {gelu}"), &got, &want);
    }

    // A non-finite value, or a width that is not whole vectors: kept as f32.
    let mut inf = w.clone();
    inf[17] = f32::INFINITY;
    assert_eq!(
        be.pack_linear_simd_f16(&inf, &[m, k]).unwrap().dtype(),
        DType::F32
    );
    let odd = halves(14, 6 * k);
    let t = be.pack_linear_simd_f16(&odd, &[6, k]).unwrap();
    assert_eq!((t.dtype(), t.dims()), (DType::F32, &[6, k][..]));
}

#[test]
fn rows_gathered_from_an_f16_table_are_the_f32_tables_rows() {
    use webformer::engine::backend::Backend;
    let be = CpuBackend::new();
    let (rows, d) = (50, 20);
    let values = halves(21, rows * d);
    let table16: Vec<f16> = values.iter().map(|&x| f16::from_f32(x)).collect();
    let t16 = Tensor::from_vec(table16, (rows, d), &Device::Cpu).unwrap();
    let t32 = Tensor::from_vec(values, (rows, d), &Device::Cpu).unwrap();
    let ids = [3u32, 0, 49, 3, 17];
    let got = be.download(&be.gather_rows(&t16, &ids).unwrap()).unwrap();
    let want = be.download(&be.gather_rows(&t32, &ids).unwrap()).unwrap();
    same_bits("gather_rows", &got, &want);
    let err = be.gather_rows(&t16, &[50]).unwrap_err().to_string();
    assert!(err.contains("id 50 out of range for 50 rows"), "{err}");
}
