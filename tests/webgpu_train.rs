//! Head training on the WebGPU backend against the CPU backend: every `train.wgsl` kernel with
//! odd shapes (n = 1, not multiples of the tile, K = 768, thousands of rows), then whole
//! AdamW steps of both head kinds (updated weights within 1e-4 of the CPU's) and the PyTorch
//! goldens of tests/train_ops.rs.
//!
//! Natively this runs on Vulkan (Mesa lavapipe where there is no GPU). Without an adapter the
//! tests fail, unless `WEBFORMER_NO_GPU=1` says to skip them.
#![cfg(feature = "webgpu")]

mod common;

use common::{fixture, gpu, values};
use serde_json::Value;
use webformer::engine::backend::cpu::CpuBackend;
use webformer::engine::backend::webgpu::WgpuBackend;
use webformer::engine::backend::{AdamWConfig, Backend, TrainOps};
use webformer::engine::train::{Head, HeadConfig, HeadTrainer, HostTensor};

/// Kernel against CPU, relative to the largest magnitude in the CPU result (at least 1).
const KERNEL_TOL: f32 = 1e-4;
/// The bound for a training step's updated weights, GPU against CPU.
const WEIGHT_TOL: f32 = 1e-4;

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

fn compare(what: &str, gpu: &[f32], cpu: &[f32]) -> f32 {
    assert_eq!(gpu.len(), cpu.len(), "{what}: length differs");
    let scale = cpu.iter().fold(1f32, |m, v| m.max(v.abs()));
    let d = max_diff(gpu, cpu);
    assert!(gpu.iter().all(|v| v.is_finite()), "{what}: non-finite GPU output");
    eprintln!("{what}: max |Δ| {d:.2e} (scale {scale:.2})");
    assert!(d <= KERNEL_TOL * scale, "{what}: GPU differs from CPU by {d:e}");
    d
}

struct Both {
    g: WgpuBackend,
    c: CpuBackend,
}

impl Both {
    fn up(
        &self,
        data: &[f32],
        shape: &[usize],
    ) -> (<WgpuBackend as Backend>::Tensor, <CpuBackend as Backend>::Tensor) {
        (
            self.g.upload(data, shape).unwrap(),
            self.c.upload(data, shape).unwrap(),
        )
    }
}

fn both() -> Option<Both> {
    Some(Both {
        g: gpu()?,
        c: CpuBackend::new(),
    })
}

#[test]
fn matmul_matches_cpu() {
    let Some(b) = both() else { return };
    for (i, &(n, k, m)) in [
        (1, 1, 1),
        (1, 5, 2),
        (37, 5, 3),
        (37, 768, 7),
        (65, 17, 130),
        (1000, 7, 64),
        (1000, 3, 1),
    ]
    .iter()
    .enumerate()
    {
        let (ga, ca) = b.up(&values(n * k, 1 + i as u64, 1.0), &[n, k]);
        let (gb, cb) = b.up(&values(k * m, 50 + i as u64, 1.0), &[k, m]);
        let gy = b.g.matmul(&ga, &gb).unwrap();
        assert_eq!(b.g.shape(&gy), vec![n, m]);
        compare(
            &format!("matmul [{n}, {k}] · [{k}, {m}]"),
            &b.g.download(&gy).unwrap(),
            &b.c.download(&b.c.matmul(&ca, &cb).unwrap()).unwrap(),
        );
    }
    let (ga, _) = b.up(&[1.0; 6], &[2, 3]);
    assert!(b.g.matmul(&ga, &ga).is_err(), "inner dimensions differ");
}

#[test]
fn matmul_tn_matches_cpu() {
    let Some(b) = both() else { return };
    // (rows summed over, a's columns, b's columns)
    for (i, &(n, k, m)) in [
        (1, 1, 1),
        (1, 768, 3),
        (37, 5, 2),
        (37, 24, 3),
        (1000, 768, 7),
        (1000, 64, 7),
        (3000, 17, 130),
    ]
    .iter()
    .enumerate()
    {
        let (ga, ca) = b.up(&values(n * k, 100 + i as u64, 1.0), &[n, k]);
        let (gb, cb) = b.up(&values(n * m, 200 + i as u64, 1.0), &[n, m]);
        let gy = b.g.matmul_tn(&ga, &gb).unwrap();
        assert_eq!(b.g.shape(&gy), vec![k, m]);
        compare(
            &format!("matmul_tn [{n}, {k}]ᵀ · [{n}, {m}]"),
            &b.g.download(&gy).unwrap(),
            &b.c.download(&b.c.matmul_tn(&ca, &cb).unwrap()).unwrap(),
        );
    }
}

#[test]
fn sum_rows_matches_cpu() {
    let Some(b) = both() else { return };
    for (i, &(n, m)) in [
        (1, 1),
        (1, 7),
        (37, 3),
        (1000, 2),
        (3000, 768),
        (5, 1000),
        (17, 16),
    ]
    .iter()
    .enumerate()
    {
        let (gx, cx) = b.up(&values(n * m, 300 + i as u64, 1.0), &[n, m]);
        let gy = b.g.sum_rows(&gx).unwrap();
        assert_eq!(b.g.shape(&gy), vec![m]);
        compare(
            &format!("sum_rows [{n}, {m}]"),
            &b.g.download(&gy).unwrap(),
            &b.c.download(&b.c.sum_rows(&cx).unwrap()).unwrap(),
        );
    }
}

#[test]
fn softmax_xent_matches_cpu() {
    let Some(b) = both() else { return };
    for (i, &(n, c, scale)) in [
        (1, 2, 1.0),
        (37, 3, 4.0),
        (1000, 7, 10.0),
        (5, 300, 3.0),
        (3, 2, 1000.0),
    ]
    .iter()
    .enumerate()
    {
        // Offset rows: only the max shift keeps exp() finite at ±1000.
        let logits: Vec<f32> = values(n * c, 400 + i as u64, scale)
            .iter()
            .enumerate()
            .map(|(j, v)| v + if (j / c) % 2 == 0 { scale } else { -scale })
            .collect();
        let labels: Vec<u32> = (0..n).map(|r| ((r * 7 + i) % c) as u32).collect();
        let (gl, cl) = b.up(&logits, &[n, c]);
        let (gloss, gd) = b.g.softmax_xent(&gl, &labels).unwrap();
        let (closs, cd) = b.c.softmax_xent(&cl, &labels).unwrap();
        assert_eq!(b.g.shape(&gloss), vec![1]);
        assert_eq!(b.g.shape(&gd), vec![n, c]);
        let what = format!("softmax_xent [{n}, {c}] ±{scale}");
        compare(
            &format!("{what} loss"),
            &b.g.download(&gloss).unwrap(),
            &b.c.download(&closs).unwrap(),
        );
        let gd = b.g.download(&gd).unwrap();
        let cd = b.c.download(&cd).unwrap();
        compare(&format!("{what} dlogits"), &gd, &cd);
        // The gradients are of order 1/n: compare them at their own scale too.
        let d = max_diff(&gd, &cd);
        assert!(d <= 1e-6, "{what}: dlogits differ by {d:e}");
    }
    let (gl, _) = b.up(&[0.0; 6], &[2, 3]);
    assert!(b.g.softmax_xent(&gl, &[0, 3]).is_err(), "label out of range");
    assert!(b.g.softmax_xent(&gl, &[0]).is_err(), "too few labels");
}

#[test]
fn relu_backward_matches_cpu() {
    let Some(b) = both() else { return };
    for (i, &(n, m)) in [(1, 1), (37, 16), (1000, 257)].iter().enumerate() {
        let mut y = values(n * m, 500 + i as u64, 1.0);
        y[0] = 0.0; // exactly zero passes no gradient, as in PyTorch
        let dy = values(n * m, 600 + i as u64, 1.0);
        let (gdy, cdy) = b.up(&dy, &[n, m]);
        let (gy, cy) = b.up(&y, &[n, m]);
        let g = b.g.download(&b.g.relu_backward(&gdy, &gy).unwrap()).unwrap();
        let c = b.c.download(&b.c.relu_backward(&cdy, &cy).unwrap()).unwrap();
        assert_eq!(g, c, "relu_backward [{n}, {m}]");
        assert_eq!(g[0], 0.0);
    }
}

#[test]
fn adamw_matches_cpu() {
    let Some(b) = both() else { return };
    let configs = [
        AdamWConfig::default(),
        AdamWConfig {
            lr: 0.05,
            betas: (0.8, 0.99),
            eps: 1e-6,
            weight_decay: 0.3,
        },
    ];
    for (i, &len) in [1usize, 37, 7 * 768, 64 * 768 + 5].iter().enumerate() {
        for (j, cfg) in configs.iter().enumerate() {
            for step in [1u64, 2, 10] {
                let seed = (i * 10 + j) as u64;
                let p = values(len, 700 + seed, 1.0);
                let g = values(len, 800 + seed, 0.1);
                let m = values(len, 900 + seed, 0.01);
                let v: Vec<f32> = values(len, 1000 + seed, 1e-3).iter().map(|x| x.abs()).collect();
                let (gp, cp) = b.up(&p, &[len]);
                let (gg, cg) = b.up(&g, &[len]);
                let (gm, cm) = b.up(&m, &[len]);
                let (gv, cv) = b.up(&v, &[len]);
                let (gp2, gm2, gv2) = b.g.adamw(&gp, &gg, &gm, &gv, step, cfg).unwrap();
                let (cp2, cm2, cv2) = b.c.adamw(&cp, &cg, &cm, &cv, step, cfg).unwrap();
                let what = format!("adamw len={len} config={j} step={step}");
                for (name, gt, ct) in [("param", gp2, cp2), ("m", gm2, cm2), ("v", gv2, cv2)] {
                    let (gt, ct) = (b.g.download(&gt).unwrap(), b.c.download(&ct).unwrap());
                    let d = max_diff(&gt, &ct);
                    assert!(d <= 1e-6, "{what} {name}: GPU differs from CPU by {d:e}");
                }
                // The inputs are left as they were.
                assert_eq!(b.g.download(&gp).unwrap(), p);
            }
        }
    }
}

/// Trains the same head on both backends; returns the largest weight difference.
fn train_both(b: &Both, config: HeadConfig, n: usize, steps: usize, adamw: AdamWConfig) -> f32 {
    let x = values(n * config.input, 31 + n as u64, 1.0);
    let labels: Vec<u32> = (0..n)
        .map(|r| ((r * 5 + r / 3) % config.classes) as u32)
        .collect();
    let (gx, cx) = b.up(&x, &[n, config.input]);
    let init = Head::new(&b.c, config, 11).unwrap().to_host(&b.c).unwrap();
    let mut gt = HeadTrainer::from_host(&b.g, config, &init, adamw).unwrap();
    let mut ct = HeadTrainer::from_host(&b.c, config, &init, adamw).unwrap();
    let what = format!("{config:?} n={n}");
    let mut worst = 0f32;
    for s in 1..=steps {
        let gl = gt.step(&b.g, &gx, &labels).unwrap();
        let cl = ct.step(&b.c, &cx, &labels).unwrap();
        assert!(
            (gl - cl).abs() <= 1e-5 * cl.abs().max(1.0),
            "{what} step {s}: loss {gl} vs {cl}"
        );
        for (g, c) in gt.to_host(&b.g).unwrap().iter().zip(ct.to_host(&b.c).unwrap()) {
            let d = max_diff(&g.data, &c.data);
            assert!(d <= WEIGHT_TOL, "{what} step {s}: {} differs by {d:e}", g.name);
            worst = worst.max(d);
        }
    }
    let moved = max_diff(&ct.to_host(&b.c).unwrap()[0].data, &init[0].data);
    assert!(
        moved > 10.0 * WEIGHT_TOL,
        "{what}: the weights barely moved ({moved:e})"
    );
    eprintln!("{what}: {steps} AdamW steps, GPU vs CPU max |Δweight| {worst:.2e}");
    worst
}

#[test]
fn training_steps_match_cpu() {
    let Some(b) = both() else { return };
    let lr = AdamWConfig {
        lr: 0.01,
        ..AdamWConfig::default()
    };
    for (config, n, steps, adamw) in [
        (
            HeadConfig {
                input: 1,
                hidden: None,
                classes: 2,
            },
            1,
            3,
            lr,
        ),
        (
            HeadConfig {
                input: 24,
                hidden: Some(16),
                classes: 3,
            },
            37,
            5,
            lr,
        ),
        (
            HeadConfig {
                input: 768,
                hidden: None,
                classes: 7,
            },
            1000,
            4,
            AdamWConfig::default(),
        ),
        (
            HeadConfig {
                input: 768,
                hidden: Some(64),
                classes: 3,
            },
            500,
            4,
            AdamWConfig::default(),
        ),
    ] {
        train_both(&b, config, n, steps, adamw);
    }
}

#[test]
fn goldens_on_gpu() {
    let Some(be) = gpu() else { return };
    for name in ["linear", "hidden"] {
        let path = fixture("train-golden").join(format!("{name}.json"));
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let f32s = |v: &Value| -> Vec<f32> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        };
        let named = |v: &Value| -> Vec<HostTensor> {
            v.as_object()
                .unwrap()
                .iter()
                .map(|(k, t)| HostTensor {
                    name: k.clone(),
                    shape: t["shape"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|d| d.as_u64().unwrap() as usize)
                        .collect(),
                    data: f32s(&t["data"]),
                })
                .collect()
        };
        let config = HeadConfig {
            input: v["input"].as_u64().unwrap() as usize,
            hidden: v["hidden"].as_u64().map(|h| h as usize),
            classes: v["classes"].as_u64().unwrap() as usize,
        };
        let a = &v["adamw"];
        let adamw = AdamWConfig {
            lr: a["lr"].as_f64().unwrap(),
            betas: (a["betas"][0].as_f64().unwrap(), a["betas"][1].as_f64().unwrap()),
            eps: a["eps"].as_f64().unwrap(),
            weight_decay: a["weight_decay"].as_f64().unwrap(),
        };
        let labels: Vec<u32> = v["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_u64().unwrap() as u32)
            .collect();
        let x = be.upload(&f32s(&v["x"]), &[labels.len(), config.input]).unwrap();
        let mut t = HeadTrainer::from_host(&be, config, &named(&v["initial"]), adamw).unwrap();
        for want in f32s(&v["losses"]) {
            let loss = t.step(&be, &x, &labels).unwrap();
            assert!(
                (loss - want).abs() <= 1e-5,
                "{name}: loss {loss} vs PyTorch {want}"
            );
        }
        let mut worst = 0f32;
        for want in named(&v["final"]) {
            let ours = t
                .to_host(&be)
                .unwrap()
                .into_iter()
                .find(|o| o.name == want.name)
                .unwrap();
            worst = worst.max(max_diff(&ours.data, &want.data));
        }
        eprintln!("{name}: GPU vs PyTorch after 3 AdamW steps: max |Δweight| {worst:.2e}");
        assert!(
            worst <= WEIGHT_TOL,
            "{name}: GPU weights differ from PyTorch by {worst:e}"
        );
    }
}

#[test]
fn same_seed_same_head_on_gpu() {
    let Some(b) = both() else { return };
    let config = HeadConfig {
        input: 768,
        hidden: Some(32),
        classes: 5,
    };
    let g1 = Head::new(&b.g, config, 2024).unwrap();
    let g2 = Head::new(&b.g, config, 2024).unwrap();
    let w1 = g1.to_host(&b.g).unwrap();
    assert_eq!(w1, g2.to_host(&b.g).unwrap(), "same seed, same GPU head");
    assert_eq!(
        w1,
        Head::new(&b.c, config, 2024).unwrap().to_host(&b.c).unwrap(),
        "and the same as on the CPU"
    );
    assert_ne!(w1, Head::new(&b.g, config, 2025).unwrap().to_host(&b.g).unwrap());
    // The logits of the two heads agree too (forward through the existing linear kernel).
    let x = values(3 * 768, 77, 1.0);
    let (gx, cx) = b.up(&x, &[3, 768]);
    compare(
        "seeded head logits",
        &b.g.download(&g1.logits(&b.g, &gx).unwrap()).unwrap(),
        &b.c.download(&Head::new(&b.c, config, 2024).unwrap().logits(&b.c, &cx).unwrap())
            .unwrap(),
    );
}
