//! A sentence's results must not depend on what else is in its batch (padding is masked).

mod common;

use common::*;
use webformer::engine::backend::cpu::CpuBackend;
use webformer::engine::encoder::Want;

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn padded_batch_equals_one_by_one() {
    let be = CpuBackend::new();
    let want = Want {
        attentions: true,
        hidden_states: true,
    };
    for name in ["bert-uncased-cls", "distilbert-cls", "bert-encoder"] {
        let model = load_model(name);
        let g = goldens(name);
        let inputs = golden_text_inputs(&g);
        let lens: Vec<usize> = inputs.iter().map(Vec::len).collect();
        assert!(
            lens.iter().min() < lens.iter().max(),
            "{name}: inputs must differ in length to pad"
        );
        let batched = model.run_text(&be, &inputs, want).unwrap();
        // Reversed order too: position in the batch must not matter either.
        let reversed: Vec<Vec<u32>> = inputs.iter().rev().cloned().collect();
        let batched_rev = model.run_text(&be, &reversed, want).unwrap();
        for (i, ids) in inputs.iter().enumerate() {
            let alone = &model.run_text(&be, std::slice::from_ref(ids), want).unwrap()[0];
            for other in [&batched[i], &batched_rev[inputs.len() - 1 - i]] {
                assert_eq!(
                    other.attentions.as_ref().unwrap()[0][0].len(),
                    ids.len(),
                    "no padding rows"
                );
                let d_attn = max_diff(
                    &flatten4(other.attentions.as_ref().unwrap()),
                    &flatten4(alone.attentions.as_ref().unwrap()),
                );
                let d_emb = max_diff(&other.embedding, &alone.embedding);
                assert!(
                    d_attn <= 1e-5,
                    "{name}[{i}]: attention depends on the batch by {d_attn:e}"
                );
                assert!(
                    d_emb <= 1e-5,
                    "{name}[{i}]: embedding depends on the batch by {d_emb:e}"
                );
                if let (Some(a), Some(b)) = (&other.logits, &alone.logits) {
                    let d = max_diff(a, b);
                    assert!(d <= 1e-4, "{name}[{i}]: logits depend on the batch by {d:e}");
                }
            }
        }
    }
}
