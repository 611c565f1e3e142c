//! The WebGPU backend (WGSL kernels through wgpu) against the CPU backend, kernel by kernel
//! with odd shapes, and whole models against the PyTorch goldens.
//!
//! Natively this runs on Vulkan (Mesa lavapipe where there is no GPU). Without an adapter the
//! tests fail, unless `WEBFORMER_NO_GPU=1` says to skip them.
#![cfg(feature = "webgpu")]

mod common;

use common::*;
use webformer::engine::backend::cpu::CpuBackend;
use webformer::engine::backend::webgpu::WgpuBackend;
use webformer::engine::backend::{AttentionShape, Backend};
use webformer::engine::checkpoint::Checkpoint;
use webformer::engine::config::ModelConfig;
use webformer::engine::encoder::Want;
use webformer::engine::model::{Model, Prediction};

/// The tolerances for the GPU against PyTorch.
const LOGIT_TOL: f64 = 2e-3;
const ATTN_TOL: f64 = 2e-3;
/// Kernel against CPU, relative to the largest magnitude in the CPU result (at least 1).
const KERNEL_TOL: f32 = 1e-4;

const ALL: Want = Want {
    attentions: true,
    hidden_states: true,
};

fn compare(what: &str, gpu: &[f32], cpu: &[f32]) -> f32 {
    assert_eq!(gpu.len(), cpu.len(), "{what}: length differs");
    let scale = cpu.iter().fold(1f32, |m, v| m.max(v.abs()));
    let d = gpu.iter().zip(cpu).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(gpu.iter().all(|v| v.is_finite()), "{what}: non-finite GPU output");
    eprintln!("{what}: max |Δ| {d:.2e} (scale {scale:.2})");
    assert!(d <= KERNEL_TOL * scale, "{what}: GPU differs from CPU by {d:e}");
    d
}

#[test]
fn linear_matches_cpu() {
    let Some(g) = gpu() else { return };
    let c = CpuBackend::new();
    let cases = [
        (1, 33, 65),
        (7, 33, 65),
        (1, 1, 1),
        (64, 64, 64),
        (65, 17, 130),
        (7, 3072, 5),
        (3, 768, 3072),
        // k a multiple of 4 takes the vec4 kernel: edges in n and m, k shorter than a slice
        (1, 4, 1),
        (65, 772, 130),
        (130, 4096, 67),
    ];
    for (i, &(n, inp, out)) in cases.iter().enumerate() {
        let x = values(n * inp, 10 + i as u64, 1.0);
        let w = values(out * inp, 20 + i as u64, 0.5);
        let b = values(out, 30 + i as u64, 0.5);
        for bias in [true, false] {
            let gx = g.upload(&x, &[n, inp]).unwrap();
            let gw = g.upload(&w, &[out, inp]).unwrap();
            let gb = g.upload(&b, &[out]).unwrap();
            let gy = g.linear(&gx, &gw, bias.then_some(&gb)).unwrap();
            assert_eq!(g.shape(&gy), vec![n, out]);
            let cx = c.upload(&x, &[n, inp]).unwrap();
            let cw = c.upload(&w, &[out, inp]).unwrap();
            let cb = c.upload(&b, &[out]).unwrap();
            let cy = c.linear(&cx, &cw, bias.then_some(&cb)).unwrap();
            let want = c.download(&cy).unwrap();
            compare(
                &format!("linear n={n} in={inp} out={out} bias={bias}"),
                &g.download(&gy).unwrap(),
                &want,
            );
            if inp % 4 == 0 {
                // The same shape on the scalar kernel, which the vec4 one replaces here.
                let gs = g.linear_scalar(&gx, &gw, bias.then_some(&gb)).unwrap();
                compare(
                    &format!("linear (scalar kernel) n={n} in={inp} out={out} bias={bias}"),
                    &g.download(&gs).unwrap(),
                    &want,
                );
            }
        }
    }
}

#[test]
fn fused_linear_gelu_matches_cpu() {
    let Some(g) = gpu() else { return };
    let c = CpuBackend::new();
    // The scalar kernel (k = 33), the vec4 kernel (k = 768), and an FFN up-projection.
    for (i, &(n, inp, out)) in [(5, 33, 70), (9, 768, 3072), (128, 384, 1536)].iter().enumerate() {
        let x = values(n * inp, 40 + i as u64, 1.0);
        let w = values(out * inp, 50 + i as u64, 0.2);
        let b = values(out, 60 + i as u64, 0.5);
        let gy = g
            .linear_gelu(
                &g.upload(&x, &[n, inp]).unwrap(),
                &g.upload(&w, &[out, inp]).unwrap(),
                Some(&g.upload(&b, &[out]).unwrap()),
            )
            .unwrap();
        let cy = c
            .gelu(
                &c.linear(
                    &c.upload(&x, &[n, inp]).unwrap(),
                    &c.upload(&w, &[out, inp]).unwrap(),
                    Some(&c.upload(&b, &[out]).unwrap()),
                )
                .unwrap(),
            )
            .unwrap();
        let cy = c.download(&cy).unwrap();
        assert!(cy.iter().any(|&v| v < -0.01), "inputs reach GELU's negative side");
        compare(
            &format!("linear+gelu n={n} in={inp} out={out}"),
            &g.download(&gy).unwrap(),
            &cy,
        );
    }
}

/// The second forward pass of the same input creates no GPU buffer: every intermediate
/// comes from the pool (and, in debug builds, reused buffers are NaN-filled first, so the
/// goldens tests above would catch a kernel reading stale data).
#[test]
fn second_forward_reuses_every_buffer() {
    let Some(be) = gpu() else { return };
    let model = load_gpu_model(&be, "bert-uncased-cls");
    let inputs = golden_text_inputs(&goldens("bert-uncased-cls"));
    let first = model.run_text(&be, &inputs, ALL).unwrap();
    let after_first = be.pool_stats();
    let second = model.run_text(&be, &inputs, ALL).unwrap();
    let after_second = be.pool_stats();
    eprintln!("pool after one forward: {after_first:?}; after two: {after_second:?}");
    assert!(after_first.created > 0);
    assert_eq!(
        after_second.created, after_first.created,
        "the second forward created buffers"
    );
    assert!(after_second.reused > after_first.reused);
    assert_eq!(
        first[0].logits, second[0].logits,
        "same input, same logits from reused buffers"
    );
}

#[test]
fn elementwise_ops_match_cpu() {
    let Some(g) = gpu() else { return };
    let c = CpuBackend::new();
    for (n, cols) in [(1, 1), (3, 7), (13, 385), (300, 257)] {
        let mut x = values(n * cols, n as u64, 6.0);
        x[0] = 0.0;
        if x.len() > 2 {
            x[1] = -40.0;
            x[2] = 40.0;
        }
        let y = values(n * cols, 99 + n as u64, 3.0);
        let (gx, gy) = (
            g.upload(&x, &[n, cols]).unwrap(),
            g.upload(&y, &[n, cols]).unwrap(),
        );
        let (cx, cy) = (
            c.upload(&x, &[n, cols]).unwrap(),
            c.upload(&y, &[n, cols]).unwrap(),
        );
        let pairs = [
            ("gelu", g.gelu(&gx).unwrap(), c.gelu(&cx).unwrap()),
            ("tanh", g.tanh(&gx).unwrap(), c.tanh(&cx).unwrap()),
            ("relu", g.relu(&gx).unwrap(), c.relu(&cx).unwrap()),
            ("add", g.add(&gx, &gy).unwrap(), c.add(&cx, &cy).unwrap()),
        ];
        for (name, gt, ct) in pairs {
            let d = compare(
                &format!("{name} [{n}, {cols}]"),
                &g.download(&gt).unwrap(),
                &c.download(&ct).unwrap(),
            );
            assert!(d <= 1e-6 * 40.0, "{name}: {d:e}");
        }
    }
}

#[test]
fn layer_norm_matches_cpu() {
    let Some(g) = gpu() else { return };
    let c = CpuBackend::new();
    for (rows, dim) in [(1, 1), (3, 2), (5, 31), (2, 256), (4, 257), (9, 385), (2, 768)] {
        // An offset mean, as hidden states have, tests the two-pass variance.
        let x: Vec<f32> = values(rows * dim, dim as u64, 2.0)
            .iter()
            .map(|v| v + 5.0)
            .collect();
        let gamma = values(dim, 7 + dim as u64, 1.0);
        let beta = values(dim, 8 + dim as u64, 1.0);
        let gt = g
            .layer_norm(
                &g.upload(&x, &[rows, dim]).unwrap(),
                &g.upload(&gamma, &[dim]).unwrap(),
                &g.upload(&beta, &[dim]).unwrap(),
                1e-12,
            )
            .unwrap();
        let ct = c
            .layer_norm(
                &c.upload(&x, &[rows, dim]).unwrap(),
                &c.upload(&gamma, &[dim]).unwrap(),
                &c.upload(&beta, &[dim]).unwrap(),
                1e-12,
            )
            .unwrap();
        compare(
            &format!("layer_norm [{rows}, {dim}]"),
            &g.download(&gt).unwrap(),
            &c.download(&ct).unwrap(),
        );
    }
}

#[test]
fn gather_and_concat_match_cpu() {
    let Some(g) = gpu() else { return };
    let c = CpuBackend::new();
    let table = values(11 * 5, 3, 1.0);
    let ids = [3u32, 0, 10, 3, 7];
    let gt = g.gather_rows(&g.upload(&table, &[11, 5]).unwrap(), &ids).unwrap();
    let ct = c.gather_rows(&c.upload(&table, &[11, 5]).unwrap(), &ids).unwrap();
    assert_eq!(g.download(&gt).unwrap(), c.download(&ct).unwrap());
    assert!(g
        .gather_rows(&g.upload(&table, &[11, 5]).unwrap(), &[11])
        .is_err());

    let a = values(2 * 3, 4, 1.0);
    let b = values(4 * 3, 5, 1.0);
    let (ga, gb) = (g.upload(&a, &[2, 3]).unwrap(), g.upload(&b, &[4, 3]).unwrap());
    let gt = g.concat_rows(&[&ga, &gb, &ga]).unwrap();
    assert_eq!(g.shape(&gt), vec![8, 3]);
    let want: Vec<f32> = a.iter().chain(&b).chain(&a).copied().collect();
    assert_eq!(g.download(&gt).unwrap(), want);
}

#[test]
fn attention_matches_cpu() {
    let Some(g) = gpu() else { return };
    let c = CpuBackend::new();
    // (batch, seq, heads, head_dim, real tokens per sequence)
    let cases: [(usize, usize, usize, usize, Vec<usize>); 5] = [
        (1, 1, 3, 4, vec![1]),
        (1, 13, 3, 8, vec![13]),
        (2, 13, 3, 8, vec![13, 6]),
        (2, 1, 2, 5, vec![1, 1]),
        (3, 300, 2, 16, vec![300, 1, 257]),
    ];
    for (batch, seq, heads, hd, lens) in cases {
        let d = heads * hd;
        let rows = batch * seq;
        let q = values(rows * d, 1 + seq as u64, 2.0);
        let k = values(rows * d, 2 + seq as u64, 2.0);
        let v = values(rows * d, 3 + seq as u64, 1.0);
        let mask: Vec<f32> = (0..batch * seq)
            .map(|r| if r % seq < lens[r / seq] { 1.0 } else { 0.0 })
            .collect();
        let shape = AttentionShape { batch, seq, heads };
        let up = |be: &WgpuBackend, x: &[f32]| be.upload(x, &[rows, d]).unwrap();
        let (gctx, gp) = g
            .attention(&up(&g, &q), &up(&g, &k), &up(&g, &v), shape, &mask, true)
            .unwrap();
        let cu = |x: &[f32]| c.upload(x, &[rows, d]).unwrap();
        let (cctx, cp) = c
            .attention(&cu(&q), &cu(&k), &cu(&v), shape, &mask, true)
            .unwrap();
        let gp = gp.unwrap();
        assert_eq!(g.shape(&gp), vec![batch, heads, seq, seq]);
        let gprobs = g.download(&gp).unwrap();
        let what = format!("attention batch={batch} seq={seq} heads={heads} lens={lens:?}");
        compare(
            &format!("{what} probs"),
            &gprobs,
            &c.download(&cp.unwrap()).unwrap(),
        );
        compare(
            &format!("{what} context"),
            &g.download(&gctx).unwrap(),
            &c.download(&cctx).unwrap(),
        );
        // Padded keys get exactly zero probability.
        for b in 0..batch {
            for i in 0..heads * seq {
                for j in lens[b]..seq {
                    assert_eq!(gprobs[((b * heads * seq) + i) * seq + j], 0.0, "{what}");
                }
            }
        }
        let (_, none) = g
            .attention(&up(&g, &q), &up(&g, &k), &up(&g, &v), shape, &mask, false)
            .unwrap();
        assert!(none.is_none(), "probabilities not asked for");
    }
}

fn load_gpu_model(be: &WgpuBackend, name: &str) -> Model<WgpuBackend> {
    let dir = fixture(name);
    let cfg = std::fs::read(dir.join("config.json")).unwrap();
    let config = ModelConfig::from_json("config.json", &cfg).unwrap();
    let ckpt = Checkpoint::from_dir(&dir).unwrap();
    Model::load(be, config, ckpt).unwrap()
}

/// Compares one prediction with its goldens; returns (max |Δlogit|, max |Δattention|).
fn check(name: &str, i: usize, p: &Prediction, g: &std::collections::HashMap<String, Golden>) -> (f64, f64) {
    let attn = &g[&format!("{i}.attentions")];
    let ours = p.attentions.as_ref().unwrap();
    assert_eq!(
        [ours.len(), ours[0].len(), ours[0][0].len(), ours[0][0][0].len()].to_vec(),
        attn.shape,
        "{name}[{i}] attention shape"
    );
    let da = max_abs_diff(&flatten4(ours), &attn.data);
    let dh = max_abs_diff(
        &flatten3(p.hidden_states.as_ref().unwrap()),
        &g[&format!("{i}.hidden_states")].data,
    );
    let mut dl = f64::NAN;
    if let Some(logits) = g.get(&format!("{i}.logits")) {
        dl = max_abs_diff(p.logits.as_ref().unwrap(), &logits.data);
        assert!(dl <= LOGIT_TOL, "{name}[{i}] logits differ by {dl:e}");
    }
    let mut dp = f64::NAN;
    if let Some(pooled) = g.get(&format!("{i}.pooler_output")) {
        dp = max_abs_diff(p.pooled.as_ref().unwrap(), &pooled.data);
        assert!(dp <= LOGIT_TOL, "{name}[{i}] pooler output differs by {dp:e}");
    }
    eprintln!(
        "{name}[{i}] GPU vs PyTorch: max |Δlogit| {dl:.2e}, max |Δattention| {da:.2e}, \
         max |Δhidden| {dh:.2e}, max |Δpooled| {dp:.2e}"
    );
    assert!(da <= ATTN_TOL, "{name}[{i}] attentions differ by {da:e}");
    (dl, da)
}

fn text_fixture(name: &str) {
    let Some(be) = gpu() else { return };
    let model = load_gpu_model(&be, name);
    let g = goldens(name);
    let inputs = golden_text_inputs(&g);
    assert!(inputs.len() >= 4, "{name}: too few golden inputs");
    for (i, ids) in inputs.iter().enumerate() {
        let p = model.run_text(&be, std::slice::from_ref(ids), ALL).unwrap();
        check(name, i, &p[0], &g);
    }
    // All at once: the shorter inputs are padded and masked on the GPU too.
    let preds = model.run_text(&be, &inputs, ALL).unwrap();
    for (i, p) in preds.iter().enumerate() {
        check(&format!("{name} (batched)"), i, p, &g);
    }
}

fn image_fixture(name: &str) {
    let Some(be) = gpu() else { return };
    let model = load_gpu_model(&be, name);
    let g = goldens(name);
    let images = golden_images(&g);
    assert!(images.len() >= 3);
    let preds = model.run_images(&be, &images, ALL).unwrap();
    for (i, p) in preds.iter().enumerate() {
        check(name, i, p, &g);
    }
}

#[test]
fn bert_uncased_classifier_on_gpu() {
    text_fixture("bert-uncased-cls");
}

#[test]
fn bert_cased_classifier_on_gpu() {
    text_fixture("bert-cased-cls");
}

#[test]
fn distilbert_classifier_on_gpu() {
    text_fixture("distilbert-cls");
}

#[test]
fn bert_encoder_on_gpu() {
    text_fixture("bert-encoder");
}

#[test]
fn vit_classifier_on_gpu() {
    image_fixture("vit-cls");
}

#[test]
fn vit_encoder_on_gpu() {
    image_fixture("vit-model");
}
