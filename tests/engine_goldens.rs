//! Every fixture architecture against PyTorch `transformers` on the same weights:
//! logits ≤ 1e-4, attentions ≤ 1e-5, hidden states ≤ 1e-4 (tests/fixtures/make_fixtures.py).

mod common;

use common::*;
use webformer::engine::backend::cpu::CpuBackend;
use webformer::engine::encoder::Want;
use webformer::engine::model::Prediction;

const LOGIT_TOL: f64 = 1e-4;
const ATTN_TOL: f64 = 1e-5;
const HIDDEN_TOL: f64 = 1e-4;

const ALL: Want = Want {
    attentions: true,
    hidden_states: true,
};

fn check(name: &str, i: usize, p: &Prediction, g: &std::collections::HashMap<String, Golden>) {
    let attn = &g[&format!("{i}.attentions")];
    let ours = p.attentions.as_ref().unwrap();
    assert_eq!(
        [ours.len(), ours[0].len(), ours[0][0].len(), ours[0][0][0].len()].to_vec(),
        attn.shape,
        "{name}[{i}] attention shape"
    );
    let d = max_abs_diff(&flatten4(ours), &attn.data);
    eprintln!("{name}[{i}] max |Δattention| {d:.2e}");
    assert!(d <= ATTN_TOL, "{name}[{i}] attentions differ by {d:e}");

    let hs = &g[&format!("{i}.hidden_states")];
    let d = max_abs_diff(&flatten3(p.hidden_states.as_ref().unwrap()), &hs.data);
    assert!(d <= HIDDEN_TOL, "{name}[{i}] hidden states differ by {d:e}");

    if let Some(logits) = g.get(&format!("{i}.logits")) {
        let d = max_abs_diff(p.logits.as_ref().unwrap(), &logits.data);
        eprintln!("{name}[{i}] max |Δlogit| {d:.2e}");
        assert!(d <= LOGIT_TOL, "{name}[{i}] logits differ by {d:e}");
    }
    if let Some(emb) = g.get(&format!("{i}.embedding")) {
        let d = max_abs_diff(&p.embedding, &emb.data);
        assert!(d <= HIDDEN_TOL, "{name}[{i}] embedding differs by {d:e}");
    }
    if let Some(pooled) = g.get(&format!("{i}.pooler_output")) {
        let d = max_abs_diff(p.pooled.as_ref().unwrap(), &pooled.data);
        assert!(d <= LOGIT_TOL, "{name}[{i}] pooler output differs by {d:e}");
    }
    if let Some(last) = g.get(&format!("{i}.last_hidden_state")) {
        // ViTModel: the final LayerNorm's output; its mean is our embedding.
        let n = last.shape[0];
        let d_model = last.shape[1];
        let mean: Vec<f64> = (0..d_model)
            .map(|j| (0..n).map(|t| last.data[t * d_model + j]).sum::<f64>() / n as f64)
            .collect();
        let d = max_abs_diff(&p.embedding, &mean);
        assert!(
            d <= HIDDEN_TOL,
            "{name}[{i}] last hidden state mean differs by {d:e}"
        );
    }
}

fn text_fixture(name: &str) {
    let be = CpuBackend::new();
    let model = load_model(name);
    let g = goldens(name);
    let inputs = golden_text_inputs(&g);
    assert!(inputs.len() >= 4, "{name}: too few golden inputs");
    for (i, ids) in inputs.iter().enumerate() {
        let p = model.run_text(&be, std::slice::from_ref(ids), ALL).unwrap();
        check(name, i, &p[0], &g);
    }
}

fn image_fixture(name: &str) {
    let be = CpuBackend::new();
    let model = load_model(name);
    let g = goldens(name);
    let images = golden_images(&g);
    assert!(images.len() >= 3);
    // All at once: images have no padding, so the batch must give each one's goldens.
    let preds = model.run_images(&be, &images, ALL).unwrap();
    for (i, p) in preds.iter().enumerate() {
        check(name, i, p, &g);
    }
}

#[test]
fn bert_uncased_classifier() {
    text_fixture("bert-uncased-cls");
}

#[test]
fn bert_cased_classifier() {
    text_fixture("bert-cased-cls");
}

#[test]
fn distilbert_classifier() {
    text_fixture("distilbert-cls");
}

#[test]
fn bert_encoder_without_prefix() {
    text_fixture("bert-encoder");
}

#[test]
fn vit_classifier() {
    image_fixture("vit-cls");
}

#[test]
fn vit_encoder() {
    image_fixture("vit-model");
}

#[test]
fn labels_come_from_id2label() {
    let be = CpuBackend::new();
    let model = load_model("distilbert-cls");
    let g = goldens("distilbert-cls");
    let p = &model
        .run_text(&be, &golden_text_inputs(&g)[..1], Want::default())
        .unwrap()[0];
    let logits = &g["0.logits"].data;
    let best = (0..logits.len())
        .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
        .unwrap();
    let names = ["negative", "positive", "neutral", "mixed", "sarcastic"];
    assert_eq!(p.label.as_deref(), Some(names[best]));
    let sum: f32 = p.probs.as_ref().unwrap().iter().sum();
    assert!((sum - 1.0).abs() < 1e-6);
    assert!(
        p.attentions.is_none() && p.hidden_states.is_none(),
        "not asked for"
    );
}
