//! The native linear kernel's micro-tiles side by side: `avx2::linear_with` on the AVX2
//! tile and on the AVX-512 one (where the CPU has it), against candle's `gemm` crate on the
//! same matrices (its AVX-512 kernels, weight read transposed in place) as the reference
//! timed in the same run. One thread; prints one markdown table of medians.
//!
//!     cargo bench --bench tiles [-- --runs N]
//!
//! See bench/README.md ("Native on an AVX-512 host").

use std::time::Instant;

#[cfg(target_arch = "x86_64")]
use webformer::engine::backend::cpu::avx2::{self, Tile};

/// (label, rows, inputs, outputs): BERT-base's and MiniLM's linears at 10, 128 and 1024 rows.
const SHAPES: &[(&str, usize, usize, usize)] = &[
    ("MiniLM FFN up, 10 rows", 10, 384, 1536),
    ("MiniLM attention out, 32 rows", 32, 384, 384),
    ("BERT-base attention out, 128 rows", 128, 768, 768),
    ("BERT-base FFN up, 128 rows", 128, 768, 3072),
    ("BERT-base FFN down, 1024 rows", 1024, 3072, 768),
    ("BERT-base FFN up, 1024 rows", 1024, 768, 3072),
];

fn median(mut t: Vec<f64>) -> f64 {
    t.sort_by(|a, b| a.total_cmp(b));
    t[t.len() / 2]
}

#[cfg(target_arch = "x86_64")]
fn main() {
    let mut runs = 15;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--runs" {
            runs = args.next().and_then(|v| v.parse().ok()).expect("--runs N");
        }
    }
    if !avx2::available() {
        eprintln!("this CPU lacks AVX2 + FMA: the packed kernel does not run here");
        return;
    }
    let tiles: Vec<Tile> = [Tile::Avx2, Tile::Avx512]
        .into_iter()
        .filter(|t| t.available())
        .collect();
    rayon::ThreadPoolBuilder::new().num_threads(1).build_global().ok();
    println!(
        "| shape | [n, k] · [m, k]ᵀ | gemm ms | {} |",
        tiles
            .iter()
            .map(|t| format!("{t:?} ms | {t:?} GFLOP/s | {t:?} / gemm"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|---|--:|{}", "--:|--:|--:|".repeat(tiles.len()));
    for &(label, n, k, m) in SHAPES {
        let x: Vec<f32> = (0..n * k)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let w: Vec<f32> = (0..m * k)
            .map(|i| ((i * 104_729) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let packed = avx2::pack(&w, m, k);
        let reference = |y: &mut [f32]| unsafe {
            // y [n, m] = x [n, k] · (w [m, k])ᵀ, row-major throughout.
            gemm::gemm(
                n,
                m,
                k,
                y.as_mut_ptr(),
                1,
                m as isize,
                false,
                x.as_ptr(),
                1,
                k as isize,
                w.as_ptr(),
                k as isize,
                1,
                0.0f32,
                1.0f32,
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        };
        let mut want = vec![0f32; n * m];
        reference(&mut want);
        // Alternate the engines run by run so that a change in the machine's speed hits all.
        let mut times = vec![Vec::new(); tiles.len() + 1];
        for run in 0..runs + 2 {
            let t = Instant::now();
            let mut y = vec![0f32; n * m];
            reference(&mut y);
            std::hint::black_box(&y);
            if run >= 2 {
                times[0].push(t.elapsed().as_secs_f64());
            }
            for (i, &tile) in tiles.iter().enumerate() {
                let t = Instant::now();
                let y = avx2::linear_with(tile, &x, n, k, &packed, m, None, false);
                let dt = t.elapsed().as_secs_f64();
                let err = y
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(err < 1e-3, "{label}: {tile:?} differs from gemm by {err}");
                if run >= 2 {
                    times[i + 1].push(dt);
                }
            }
        }
        let g = median(times[0].clone());
        let cells: Vec<String> = times[1..]
            .iter()
            .map(|t| {
                let s = median(t.clone());
                format!(
                    "{:.3} | {:.0} | {:.2}",
                    s * 1e3,
                    2.0 * (n * k * m) as f64 / s / 1e9,
                    s / g
                )
            })
            .collect();
        println!(
            "| {label} | [{n}, {k}] · [{m}, {k}]ᵀ | {:.3} | {} |",
            g * 1e3,
            cells.join(" | ")
        );
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    eprintln!("the packed kernel's tiles are x86-64 only");
}
