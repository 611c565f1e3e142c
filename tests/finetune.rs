//! The fine-tuning loop (split, epochs, early stopping, metrics), the head file, and the CLI's
//! `train` / `text --head` contract, on small data that runs in seconds.

mod common;

use common::*;
use webformer::engine::backend::cpu::CpuBackend;
use webformer::engine::finetune::{
    block_on_ready, head_from_safetensors, head_to_safetensors, metrics, train_head, HeadMeta, TrainConfig,
    Trained,
};

/// Three well-separated clusters in 8 dimensions, with noise: learnable, not trivially.
fn clusters(n_per_class: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<u32>) {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut noise = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..n_per_class * 3 {
        let c = (i % 3) as u32;
        let row: Vec<f32> = (0..8)
            .map(|d| if d == c as usize * 2 { 2.0 } else { 0.0 } + noise())
            .collect();
        x.push(row);
        y.push(c);
    }
    (x, y)
}

fn names() -> Vec<String> {
    ["cat", "dog", "eel"].iter().map(|s| s.to_string()).collect()
}

fn train(config: &TrainConfig) -> Trained<CpuBackend> {
    let (x, y) = clusters(40, 1);
    block_on_ready(train_head(&CpuBackend::new(), &x, &y, &names(), config, |_| true)).unwrap()
}

#[test]
fn learns_separable_classes_and_reports_metrics() {
    let t = train(&TrainConfig::default());
    let first = &t.history[0];
    let last = t.history.last().unwrap();
    eprintln!(
        "epochs {}, val loss {:.3} -> {:.3}",
        t.history.len(),
        first.val_loss,
        last.val_loss
    );
    assert!(last.train_loss < first.train_loss * 0.5, "the loss goes down");
    assert_eq!(t.metrics.accuracy, 1.0);
    assert_eq!(
        t.metrics.confusion,
        vec![vec![8, 0, 0], vec![0, 8, 0], vec![0, 0, 8]]
    );
    assert!(t.metrics.per_class.iter().all(|c| c.f1 == 1.0 && c.support == 8));
    assert!(t.history.iter().filter(|r| r.best).count() >= 1);
    assert!(t.history[t.best_epoch - 1].best);
}

#[test]
fn same_seed_same_head_other_seed_other_head() {
    let be = CpuBackend::new();
    let a = train(&TrainConfig {
        epochs: 5,
        ..Default::default()
    })
    .head
    .to_host(&be)
    .unwrap();
    let b = train(&TrainConfig {
        epochs: 5,
        ..Default::default()
    })
    .head
    .to_host(&be)
    .unwrap();
    let c = train(&TrainConfig {
        epochs: 5,
        seed: 7,
        ..Default::default()
    })
    .head
    .to_host(&be)
    .unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn early_stopping_and_cancel_keep_the_best_head() {
    // A tiny learning rate on noise: validation loss stops improving, patience ends it.
    let (x, _) = clusters(40, 2);
    // Labels unrelated to the clusters (cluster = i % 3).
    let y: Vec<u32> = (0..x.len()).map(|i| ((i / 3) % 3) as u32).collect();
    let config = TrainConfig {
        epochs: 200,
        patience: 3,
        lr: 0.05,
        ..Default::default()
    };
    let t = block_on_ready(train_head(&CpuBackend::new(), &x, &y, &names(), &config, |_| {
        true
    }))
    .unwrap();
    assert!(t.stopped_early, "ran {} epochs", t.history.len());
    assert_eq!(t.history.len(), t.best_epoch + 3);

    // Cancelling after epoch 2 keeps what was trained.
    let mut seen = 0;
    let t = block_on_ready(train_head(&CpuBackend::new(), &x, &y, &names(), &config, |_| {
        seen += 1;
        seen < 2
    }))
    .unwrap();
    assert_eq!(t.history.len(), 2);
    assert!(!t.stopped_early);
}

#[test]
fn bad_inputs_are_refused_with_a_reason() {
    let be = CpuBackend::new();
    let (x, y) = clusters(4, 3);
    let run = |x: &[Vec<f32>], y: &[u32], names: &[String]| {
        block_on_ready(train_head(&be, x, y, names, &TrainConfig::default(), |_| true))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(run(&x, &y[1..], &names()).contains("labels"));
    assert!(run(&x, &y, &names()[..1]).contains("at least two classes"));
    assert!(run(&x, &y, &names()[..2]).contains("only 2 classes"));
    assert!(run(&x[..1], &y[..1], &names()).contains("too few"));
}

#[test]
fn metrics_by_hand() {
    // truth:     a a a b b c
    // predicted: a a b b c c
    let m = metrics(&[0, 0, 1, 1, 2, 2], &[0, 0, 0, 1, 1, 2], &names());
    assert_eq!(m.confusion, vec![vec![2, 1, 0], vec![0, 1, 1], vec![0, 0, 1]]);
    assert!((m.accuracy - 4.0 / 6.0).abs() < 1e-12);
    let a = &m.per_class[0];
    assert_eq!((a.precision, a.recall), (1.0, 2.0 / 3.0));
    assert!((a.f1 - 0.8).abs() < 1e-12);
    let c = &m.per_class[2];
    assert_eq!((c.precision, c.recall, c.support), (0.5, 1.0, 1));
}

#[test]
fn head_file_round_trips_and_refuses_other_files() {
    let be = CpuBackend::new();
    let t = train(&TrainConfig {
        epochs: 3,
        hidden: Some(5),
        ..Default::default()
    });
    let weights = t.head.to_host(&be).unwrap();
    let meta = HeadMeta {
        labels: names(),
        encoder: "tiny".into(),
        input: 8,
        hidden: Some(5),
        pooling: "mean".into(),
        metrics: Some(t.metrics.clone()),
        config: None,
    };
    let bytes = head_to_safetensors(&weights, &meta).unwrap();
    let (w2, m2) = head_from_safetensors("head.safetensors", &bytes).unwrap();
    assert_eq!(
        (&m2.labels, &m2.encoder, m2.input, m2.hidden),
        (&meta.labels, &meta.encoder, 8, Some(5))
    );
    let (a, b) = (m2.metrics.unwrap(), t.metrics.clone());
    assert_eq!(a.confusion, b.confusion);
    assert!((a.accuracy - b.accuracy).abs() < 1e-12);
    let mut sorted = weights.clone();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut w2s = w2.clone();
    w2s.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(w2s, sorted);

    let err = head_from_safetensors("x.safetensors", &bytes[..100])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("x.safetensors: not a valid safetensors file"),
        "{err}"
    );
    let model = std::fs::read(fixture("bert-encoder").join("model.safetensors")).unwrap();
    let err = head_from_safetensors("model.safetensors", &model)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a webformer head"), "{err}");
}

/// A CSV the tiny fixture encoder can learn: the words decide the class.
fn word_csv() -> String {
    let mut csv = String::from("review,sentiment\n");
    for i in 0..30 {
        csv.push_str(&format!("\"great wonderful lovely film {i}\",good\n"));
        csv.push_str(&format!("\"awful boring dull, terrible {i}\",bad\n"));
    }
    csv
}

#[test]
fn cli_train_then_text_with_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("reviews.csv");
    std::fs::write(&csv, word_csv()).unwrap();
    let out = dir.path().join("head.safetensors");
    let enc = fixture("bert-encoder");
    let (code, lines, stderr) = webformer(&[
        "train",
        "--model",
        enc.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "40",
        "--lr",
        "0.01",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("column \"review\", labels from \"sentiment\""),
        "{stderr}"
    );
    let (epochs, done) = lines.split_at(lines.len() - 1);
    assert!(!epochs.is_empty());
    for (i, e) in epochs.iter().enumerate() {
        assert_eq!(e["epoch"], i + 1);
        for k in ["train_loss", "train_accuracy", "val_loss", "val_accuracy"] {
            assert!(e[k].is_f64(), "{k} in {e}");
        }
    }
    let done = &done[0];
    assert_eq!(done["done"], true);
    assert_eq!(done["labels"], serde_json::json!(["bad", "good"]));
    assert_eq!(done["val_accuracy"], 1.0, "{done}");
    assert!(out.exists() && out.with_extension("json").exists());

    // The head on its encoder: labels are the CSV's strings.
    let (code, lines, stderr) = webformer(&[
        "text",
        "--model",
        enc.to_str().unwrap(),
        "--head",
        out.to_str().unwrap(),
        "great wonderful lovely film 3",
        "awful boring dull, terrible 3",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines[0]["label"], "good");
    assert_eq!(lines[1]["label"], "bad");
    assert_eq!(lines[0]["probs"].as_array().unwrap().len(), 2);
    assert!(lines[0]["token_ids"].is_array());

    // A head of the wrong width is refused by name.
    let vit = fixture("bert-uncased-cls");
    let (code, _, stderr) = webformer(&[
        "text",
        "--model",
        vit.to_str().unwrap(),
        "--head",
        out.to_str().unwrap(),
        "hi",
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("the head takes 36-wide embeddings"), "{stderr}");

    // A CSV with one class only: the dataset's message, non-zero exit.
    std::fs::write(&csv, "text,label\na,x\nb,x\nc,x\n").unwrap();
    let (code, _, stderr) = webformer(&[
        "train",
        "--model",
        enc.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("only one class"), "{stderr}");
}

/// The same training on the GPU gives the same head as on the CPU (within the GPU tolerance).
#[cfg(feature = "webgpu")]
#[test]
fn gpu_training_matches_cpu_training() {
    use webformer::engine::backend::webgpu::WgpuBackend;
    let gpu = match WgpuBackend::new() {
        Ok(g) => g,
        Err(e) if std::env::var("WEBFORMER_NO_GPU").as_deref() == Ok("1") => {
            eprintln!("SKIPPED: WEBFORMER_NO_GPU=1: {e}");
            return;
        }
        Err(e) => panic!("the WebGPU backend could not start: {e} (WEBFORMER_NO_GPU=1 skips)"),
    };
    let (x, y) = clusters(40, 1);
    let config = TrainConfig {
        epochs: 6,
        patience: 100,
        hidden: Some(16),
        ..Default::default()
    };
    let cpu = CpuBackend::new();
    let a = block_on_ready(train_head(&cpu, &x, &y, &names(), &config, |_| true)).unwrap();
    let b = block_on_ready(train_head(&gpu, &x, &y, &names(), &config, |_| true)).unwrap();
    let (wa, wb) = (a.head.to_host(&cpu).unwrap(), b.head.to_host(&gpu).unwrap());
    let mut worst = 0f32;
    for (p, q) in wa.iter().zip(&wb) {
        assert_eq!(p.name, q.name);
        for (u, v) in p.data.iter().zip(&q.data) {
            worst = worst.max((u - v).abs());
        }
    }
    eprintln!("6 epochs of training, GPU vs CPU head weights: max |Δ| {worst:.2e}");
    assert!(worst <= 1e-4, "{worst}");
    assert_eq!(a.metrics.confusion, b.metrics.confusion);
}
