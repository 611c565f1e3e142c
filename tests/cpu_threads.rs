//! The kernels' thread split (`engine::backend::cpu::par`, what the browser's threaded worker
//! runs) against the single-thread kernels: the same results bit for bit, on shapes that do
//! split (odd sizes, blocks that do not divide evenly, bias, GELU, masked keys) in a pool of
//! three threads, as a worker with two helpers has.

mod common;

use webformer::engine::backend::cpu::{par, simd};

/// Deterministic values in [-1, 1).
fn rand(seed: u64, len: usize) -> Vec<f32> {
    common::values(len, seed, 1.0)
}

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

fn same_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!(
            "{what}: element {i} is {} threaded, {} on one thread",
            got[i], want[i]
        );
    }
}

#[test]
fn matmul_splits_by_columns_and_matches() {
    // (n, m, k): few rows (the weight split matters most), columns not a multiple of
    // threads × tile, k with a tail; and more rows than columns.
    for &(n, m, k, ldc) in &[(7, 301, 385, 301), (1, 1536, 384, 1540), (40, 97, 770, 100)] {
        let (a, b, bias) = (rand(1, n * k), rand(2, m * k), rand(3, m));
        for gelu in [false, true] {
            let ep = simd::Epilogue {
                col_bias: Some(&bias),
                gelu,
                ..simd::Epilogue::NONE
            };
            let mut want = vec![7f32; n * ldc];
            simd::matmul_nt(&a, k, &b, k, &mut want, ldc, n, m, k, ep);
            let mut got = vec![7f32; n * ldc];
            let split = in_pool(3, || {
                par::matmul_nt(&a, k, &b, k, &mut got, ldc, n, m, k, ep);
                par::threads_for(n * m * k)
            });
            assert!(split > 1, "{n}×{m}×{k} should split, got {split} thread(s)");
            // Padding columns beyond m stay untouched.
            same_bits(&format!("matmul {n}×{m}×{k} gelu={gelu}"), &got, &want);
        }
    }
}

#[test]
fn attention_splits_by_heads_and_matches() {
    let (batch, seq, heads, hd) = (2, 70, 4, 24);
    let d = heads * hd;
    let (q, k, v) = (
        rand(4, batch * seq * d),
        rand(5, batch * seq * d),
        rand(6, batch * seq * d),
    );
    // The second sequence has its last 9 keys masked (padding).
    let bias: Vec<f32> = (0..batch * seq)
        .map(|i| if i >= 2 * seq - 9 { f32::MIN } else { 0.0 })
        .collect();
    let mut want_p = vec![0f32; batch * heads * seq * seq];
    let want = simd::attention(&q, &k, &v, batch, seq, heads, &bias, Some(&mut want_p));
    let mut got_p = vec![0f32; want_p.len()];
    let (got, got_np, split) = in_pool(3, || {
        let with = par::attention(&q, &k, &v, batch, seq, heads, &bias, Some(&mut got_p));
        let without = par::attention(&q, &k, &v, batch, seq, heads, &bias, None);
        (with, without, par::threads_for(batch * seq * seq * d * 2))
    });
    assert!(split > 1, "attention should split, got {split} thread(s)");
    same_bits("attention context", &got, &want);
    same_bits("attention context without probabilities", &got_np, &want);
    same_bits("attention probabilities", &got_p, &want_p);
}

#[test]
fn layer_norm_and_gelu_split_and_match() {
    let (rows, d) = (301, 771);
    let (x, gamma, beta) = (rand(7, rows * d), rand(8, d), rand(9, d));
    let mut want = vec![0f32; rows * d];
    simd::layer_norm(&x, &mut want, d, &gamma, &beta, 1e-12);
    let mut got = vec![0f32; rows * d];
    let split = in_pool(3, || {
        par::layer_norm(&x, &mut got, d, &gamma, &beta, 1e-12);
        par::threads_for(x.len() * 4)
    });
    assert!(split > 1);
    same_bits("layer_norm", &got, &want);

    let mut want = rand(10, 50_001);
    let mut got = want.clone();
    simd::gelu_inplace(&mut want);
    let split = in_pool(3, || {
        par::gelu_inplace(&mut got);
        par::threads_for(got.len() * 32)
    });
    assert!(split > 1);
    same_bits("gelu", &got, &want);
}

#[test]
fn one_thread_is_the_plain_kernel() {
    let (n, m, k) = (7, 301, 385);
    let (a, b) = (rand(11, n * k), rand(12, m * k));
    let mut want = vec![0f32; n * m];
    simd::matmul_nt(&a, k, &b, k, &mut want, m, n, m, k, simd::Epilogue::NONE);
    let mut got = vec![0f32; n * m];
    let split = in_pool(1, || {
        par::matmul_nt(&a, k, &b, k, &mut got, m, n, m, k, simd::Epilogue::NONE);
        par::threads_for(n * m * k)
    });
    assert_eq!(split, 1);
    same_bits("one thread", &got, &want);
}

#[test]
fn team_runs_every_task_once_and_helpers_take_some() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::{Duration, Instant};
    use webformer::engine::backend::cpu::team;

    in_pool(3, || {
        let caller = std::thread::current().id();
        // Many short jobs back to back: helpers still claiming from one job while the next
        // is posted is where a claim could go to the wrong job.
        for round in 0..20_000 {
            let tasks = 1 + round % 13 + (round % 101 == 0) as usize * 150;
            let runs: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
            team::run(tasks, &|i| {
                runs[i].fetch_add(1, Ordering::Relaxed);
            });
            for (i, r) in runs.iter().enumerate() {
                assert_eq!(
                    r.load(Ordering::Relaxed),
                    1,
                    "round {round}: task {i} ran {r:?} times"
                );
            }
        }
        // A helper takes a task: the caller's tasks wait (up to 20 s) until one has.
        let helped = AtomicBool::new(false);
        team::run(8, &|_| {
            if std::thread::current().id() != caller {
                helped.store(true, Ordering::Release);
            } else {
                let t0 = Instant::now();
                while !helped.load(Ordering::Acquire) && t0.elapsed() < Duration::from_secs(20) {
                    std::thread::yield_now();
                }
            }
        });
        assert!(
            helped.load(Ordering::Acquire),
            "no helper thread took a task within 20 s"
        );
    });
}

#[test]
fn a_panicking_task_reaches_the_caller_and_the_team_goes_on() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use webformer::engine::backend::cpu::team;

    in_pool(3, || {
        for _ in 0..50 {
            let caught = std::panic::catch_unwind(|| {
                team::run(16, &|i| {
                    if i == 5 {
                        panic!("task 5 fails");
                    }
                })
            });
            assert!(caught.is_err(), "the panic of task 5 was lost");
        }
        let count = AtomicUsize::new(0);
        team::run(40, &|_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 40);
    });
}
