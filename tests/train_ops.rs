//! Head-only training on the CPU backend against PyTorch (tests/fixtures/train-golden, from
//! make_train_goldens.py): gradients, losses and AdamW-updated weights; the ops against plain
//! loops; seeded initialisation.

mod common;

use common::{fixture, values};
use serde_json::Value;
use webformer::engine::backend::cpu::CpuBackend;
use webformer::engine::backend::{AdamWConfig, Backend, TrainOps};
use webformer::engine::train::{Head, HeadConfig, HeadTrainer, HostTensor};

/// CPU against PyTorch, absolute.
const TORCH_TOL: f32 = 1e-5;

struct Golden {
    config: HeadConfig,
    adamw: AdamWConfig,
    x: Vec<f32>,
    labels: Vec<u32>,
    initial: Vec<HostTensor>,
    grads: Vec<HostTensor>,
    losses: Vec<f32>,
    last: Vec<HostTensor>,
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn named(v: &Value) -> Vec<HostTensor> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(name, t)| HostTensor {
            name: name.clone(),
            shape: t["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect(),
            data: f32s(&t["data"]),
        })
        .collect()
}

fn golden(name: &str) -> Golden {
    let path = fixture("train-golden").join(format!("{name}.json"));
    let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let n = v["n"].as_u64().unwrap() as usize;
    let input = v["input"].as_u64().unwrap() as usize;
    let a = &v["adamw"];
    let g = Golden {
        config: HeadConfig {
            input,
            hidden: v["hidden"].as_u64().map(|h| h as usize),
            classes: v["classes"].as_u64().unwrap() as usize,
        },
        adamw: AdamWConfig {
            lr: a["lr"].as_f64().unwrap(),
            betas: (a["betas"][0].as_f64().unwrap(), a["betas"][1].as_f64().unwrap()),
            eps: a["eps"].as_f64().unwrap(),
            weight_decay: a["weight_decay"].as_f64().unwrap(),
        },
        x: f32s(&v["x"]),
        labels: v["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_u64().unwrap() as u32)
            .collect(),
        initial: named(&v["initial"]),
        grads: named(&v["grads"]),
        losses: f32s(&v["losses"]),
        last: named(&v["final"]),
    };
    assert_eq!(g.x.len(), n * input);
    assert_eq!(g.labels.len(), n);
    g
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

/// Compares `ours` with PyTorch's tensors of the same names; returns the largest difference.
fn compare_named(what: &str, ours: &[HostTensor], torch: &[HostTensor], tol: f32) -> f32 {
    assert_eq!(ours.len(), torch.len(), "{what}: tensor count");
    let mut worst = 0f32;
    for t in torch {
        let o = ours
            .iter()
            .find(|o| o.name == t.name)
            .unwrap_or_else(|| panic!("{what}: no {}", t.name));
        assert_eq!(o.shape, t.shape, "{what}: {} shape", t.name);
        let d = max_diff(&o.data, &t.data);
        eprintln!("{what} {}: max |Δ| {d:.2e}", t.name);
        assert!(d <= tol, "{what}: {} differs by {d:e}", t.name);
        worst = worst.max(d);
    }
    worst
}

fn matches_torch(name: &str) {
    let g = golden(name);
    let be = CpuBackend::new();
    let x = be.upload(&g.x, &[g.labels.len(), g.config.input]).unwrap();
    let mut trainer = HeadTrainer::from_host(&be, g.config, &g.initial, g.adamw).unwrap();
    // The weights go in and come out unchanged.
    compare_named(
        &format!("{name} initial"),
        &trainer.to_host(&be).unwrap(),
        &g.initial,
        0.0,
    );

    let (loss, grads) = trainer.head().loss_and_grads(&be, &x, &g.labels).unwrap();
    let dl = (be.download(&loss).unwrap()[0] - g.losses[0]).abs();
    assert!(dl <= TORCH_TOL, "{name}: first loss differs by {dl:e}");
    let grads: Vec<HostTensor> = g
        .config
        .params()
        .into_iter()
        .zip(&grads)
        .map(|((n, shape), t)| HostTensor {
            name: n.to_string(),
            shape,
            data: be.download(t).unwrap(),
        })
        .collect();
    compare_named(&format!("{name} step-1 gradient"), &grads, &g.grads, TORCH_TOL);

    for (i, &want) in g.losses.iter().enumerate() {
        let loss = trainer.step(&be, &x, &g.labels).unwrap();
        eprintln!("{name} step {}: loss {loss} (PyTorch {want})", i + 1);
        assert!(
            (loss - want).abs() <= TORCH_TOL,
            "{name} step {}: loss {loss} vs {want}",
            i + 1
        );
    }
    assert_eq!(trainer.steps(), g.losses.len() as u64);
    let moved = max_diff(
        &trainer.to_host(&be).unwrap()[0].data,
        &g.initial_in_order(&g.config)[0].data,
    );
    assert!(
        moved > 1e-3,
        "{name}: training barely moved the weights ({moved:e})"
    );
    let d = compare_named(
        &format!("{name} final"),
        &trainer.to_host(&be).unwrap(),
        &g.last,
        TORCH_TOL,
    );
    eprintln!(
        "{name}: CPU vs PyTorch after {} AdamW steps: max |Δweight| {d:.2e}",
        g.losses.len()
    );
}

impl Golden {
    fn initial_in_order(&self, config: &HeadConfig) -> Vec<HostTensor> {
        config
            .params()
            .iter()
            .map(|(n, _)| self.initial.iter().find(|t| t.name == *n).unwrap().clone())
            .collect()
    }
}

#[test]
fn linear_head_matches_pytorch() {
    matches_torch("linear");
}

#[test]
fn hidden_head_matches_pytorch() {
    matches_torch("hidden");
}

#[test]
fn cpu_ops_match_plain_loops() {
    let be = CpuBackend::new();
    for (n, k, m) in [(1, 1, 1), (5, 3, 7), (37, 24, 3)] {
        let a = values(n * k, 1, 1.0);
        let b = values(k * m, 2, 1.0);
        let c = values(n * m, 3, 1.0);
        let ta = be.upload(&a, &[n, k]).unwrap();
        let got = be
            .download(&be.matmul(&ta, &be.upload(&b, &[k, m]).unwrap()).unwrap())
            .unwrap();
        let want: Vec<f32> = (0..n * m)
            .map(|o| (0..k).map(|t| a[o / m * k + t] * b[t * m + o % m]).sum())
            .collect();
        assert!(max_diff(&got, &want) < 1e-5, "matmul {n}×{k}×{m}");
        let got = be
            .download(&be.matmul_tn(&ta, &be.upload(&c, &[n, m]).unwrap()).unwrap())
            .unwrap();
        let want: Vec<f32> = (0..k * m)
            .map(|o| (0..n).map(|r| a[r * k + o / m] * c[r * m + o % m]).sum())
            .collect();
        assert!(max_diff(&got, &want) < 1e-5, "matmul_tn {n}×{k}×{m}");
        let got = be
            .download(&be.sum_rows(&be.upload(&c, &[n, m]).unwrap()).unwrap())
            .unwrap();
        let want: Vec<f32> = (0..m).map(|j| (0..n).map(|r| c[r * m + j]).sum()).collect();
        assert!(max_diff(&got, &want) < 1e-5, "sum_rows {n}×{m}");
        let dy = values(n * m, 4, 1.0);
        let got = be
            .download(
                &be.relu_backward(
                    &be.upload(&dy, &[n, m]).unwrap(),
                    &be.upload(&c, &[n, m]).unwrap(),
                )
                .unwrap(),
            )
            .unwrap();
        let want: Vec<f32> = dy
            .iter()
            .zip(&c)
            .map(|(d, y)| if *y > 0.0 { *d } else { 0.0 })
            .collect();
        assert_eq!(got, want, "relu_backward");
    }
}

#[test]
fn softmax_xent_is_stable_and_checks_labels() {
    let be = CpuBackend::new();
    // Huge logits would overflow exp without the max shift.
    let logits = be
        .upload(&[1000.0, 0.0, -1000.0, 500.0, 501.0, 499.0], &[2, 3])
        .unwrap();
    let (loss, d) = be.softmax_xent(&logits, &[0, 2]).unwrap();
    let loss = be.download(&loss).unwrap();
    let d = be.download(&d).unwrap();
    // Row 0 (label 0, the max): loss ≈ 0. Row 1 (label 2), shifted by its max 501:
    // log(e⁻¹ + 1 + e⁻²) − (−2).
    let row1 = ((-1f64).exp() + 1.0 + (-2f64).exp()).ln() + 2.0;
    assert!((loss[0] as f64 - row1 / 2.0).abs() < 1e-5, "{loss:?}");
    assert!(d.iter().all(|v| v.is_finite()));
    // Each row of the gradient sums to zero.
    for r in d.chunks(3) {
        assert!(r.iter().sum::<f32>().abs() < 1e-6, "{r:?}");
    }
    assert!(be.softmax_xent(&logits, &[0, 3]).is_err(), "label out of range");
    assert!(be.softmax_xent(&logits, &[0]).is_err(), "too few labels");
}

#[test]
fn adamw_matches_the_pytorch_formula() {
    let be = CpuBackend::new();
    let cfg = AdamWConfig::default();
    assert_eq!(
        (cfg.lr, cfg.betas, cfg.eps, cfg.weight_decay),
        (1e-3, (0.9, 0.999), 1e-8, 0.01),
        "torch.optim.AdamW's defaults"
    );
    let p = values(7, 1, 1.0);
    let g = values(7, 2, 1.0);
    let m = values(7, 3, 0.1);
    let v: Vec<f32> = values(7, 4, 0.1).iter().map(|x| x.abs()).collect();
    let up = |x: &[f32]| be.upload(x, &[7]).unwrap();
    let (p2, m2, v2) = be.adamw(&up(&p), &up(&g), &up(&m), &up(&v), 3, &cfg).unwrap();
    let (p2, m2, v2) = (
        be.download(&p2).unwrap(),
        be.download(&m2).unwrap(),
        be.download(&v2).unwrap(),
    );
    for i in 0..7 {
        // In f64, straight from the PyTorch documentation's algorithm.
        let (b1, b2, t) = (0.9f64, 0.999f64, 3.0);
        let pd = p[i] as f64 * (1.0 - 1e-3 * 0.01);
        let md = 0.9 * m[i] as f64 + 0.1 * g[i] as f64;
        let vd = b2 * v[i] as f64 + (1.0 - b2) * (g[i] as f64).powi(2);
        let mhat = md / (1.0 - b1.powf(t));
        let vhat = vd / (1.0 - b2.powf(t));
        let pd = pd - 1e-3 * mhat / (vhat.sqrt() + 1e-8);
        assert!((p2[i] as f64 - pd).abs() < 1e-6, "param {i}: {} vs {pd}", p2[i]);
        assert!((m2[i] as f64 - md).abs() < 1e-6, "m {i}");
        assert!((v2[i] as f64 - vd).abs() < 1e-6, "v {i}");
    }
    assert!(
        be.adamw(&up(&p), &up(&g), &up(&m), &up(&v), 0, &cfg).is_err(),
        "step 0"
    );
}

#[test]
fn same_seed_same_head() {
    let be = CpuBackend::new();
    for config in [
        HeadConfig {
            input: 24,
            hidden: None,
            classes: 3,
        },
        HeadConfig {
            input: 24,
            hidden: Some(16),
            classes: 5,
        },
    ] {
        let a = Head::new(&be, config, 42).unwrap().to_host(&be).unwrap();
        let b = Head::new(&be, config, 42).unwrap().to_host(&be).unwrap();
        let c = Head::new(&be, config, 43).unwrap().to_host(&be).unwrap();
        assert_eq!(a, b, "same seed, same head");
        assert_ne!(a, c, "another seed, another head");
        let names: Vec<_> = a.iter().map(|t| t.name.as_str()).collect();
        let want: Vec<_> = config.params().iter().map(|(n, _)| *n).collect();
        assert_eq!(names, want);
        for t in &a {
            // nn.Linear's bound 1/√fan_in, fan_in being the layer's input width.
            let fan_in = if t.name.starts_with("hidden") {
                24
            } else {
                config.hidden.unwrap_or(24)
            };
            let bound = 1.0 / (fan_in as f32).sqrt();
            assert!(
                t.data.iter().all(|v| v.abs() <= bound),
                "{} within ±{bound}",
                t.name
            );
            let spread = t.data.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(spread > bound * 0.5, "{} uses the range", t.name);
        }
    }
    // A head trains from its seed the same way twice.
    let config = HeadConfig {
        input: 24,
        hidden: Some(16),
        classes: 3,
    };
    let x = be.upload(&values(37 * 24, 9, 1.0), &[37, 24]).unwrap();
    let labels: Vec<u32> = (0..37).map(|i| i % 3).collect();
    let run = || {
        let mut t =
            HeadTrainer::new(&be, Head::new(&be, config, 5).unwrap(), AdamWConfig::default()).unwrap();
        let losses: Vec<f32> = (0..3).map(|_| t.step(&be, &x, &labels).unwrap()).collect();
        (losses, t.to_host(&be).unwrap())
    };
    assert_eq!(run(), run());
}

#[test]
fn bad_inputs_are_errors() {
    let be = CpuBackend::new();
    let config = HeadConfig {
        input: 4,
        hidden: None,
        classes: 2,
    };
    let head = Head::new(&be, config, 1).unwrap();
    let mut weights = head.to_host(&be).unwrap();
    assert!(
        Head::from_host(&be, HeadConfig { input: 5, ..config }, &weights).is_err(),
        "wrong shape"
    );
    weights[0].name = "classifier.w".into();
    assert!(Head::from_host(&be, config, &weights).is_err(), "wrong name");
    assert!(Head::new(&be, HeadConfig { classes: 0, ..config }, 1).is_err());
    let mut t = HeadTrainer::new(&be, head, AdamWConfig::default()).unwrap();
    let x = be.upload(&[0.0; 8], &[2, 4]).unwrap();
    assert!(t.step(&be, &x, &[0, 2]).is_err(), "label out of range");
    let x3 = be.upload(&[0.0; 6], &[2, 3]).unwrap();
    assert!(t.step(&be, &x3, &[0, 1]).is_err(), "input width");
    assert_eq!(t.steps(), 0, "failed steps do not count");
}
