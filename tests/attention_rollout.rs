//! Attention rollout and the ViT [CLS] patch grid (engine/explain.rs), against products
//! worked out here by other means, and on a real model's maps.

mod common;

use common::*;
use webformer::engine::explain::{attention_rollout, cls_patch_grid};

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-6
}

#[test]
fn one_layer_is_the_residual_head_mean() {
    // Two heads on 2 tokens: mean [[0.5, 0.5], [0.25, 0.75]]; 0.5·mean + 0.5·I, rows sum to 1.
    let att = vec![vec![
        vec![vec![1.0, 0.0], vec![0.5, 0.5]],
        vec![vec![0.0, 1.0], vec![0.0, 1.0]],
    ]];
    let r = attention_rollout(&att);
    let want = [[0.75, 0.25], [0.125, 0.875]];
    for q in 0..2 {
        for k in 0..2 {
            assert!(
                close(r[q][k], want[q][k]),
                "r[{q}][{k}] = {} want {}",
                r[q][k],
                want[q][k]
            );
        }
    }
}

#[test]
fn layers_multiply_later_layer_on_the_left() {
    // Layer 1 sends everything to token 0, layer 2 everything to token 1 (one head each).
    let to0 = vec![vec![vec![1.0, 0.0], vec![1.0, 0.0]]];
    let to1 = vec![vec![vec![0.0, 1.0], vec![0.0, 1.0]]];
    // Â1 = [[1, 0], [.5, .5]], Â2 = [[.5, .5], [0, 1]]; R = Â2 · Â1 = [[.75, .25], [.5, .5]].
    let r = attention_rollout(&[to0.clone(), to1.clone()]);
    let want = [[0.75, 0.25], [0.5, 0.5]];
    for q in 0..2 {
        for k in 0..2 {
            assert!(close(r[q][k], want[q][k]), "r[{q}][{k}] = {}", r[q][k]);
        }
    }
    // The other order gives Â1 · Â2 = [[.5, .5], [.25, .75]]: the order matters.
    let r = attention_rollout(&[to1, to0]);
    assert!(close(r[0][0], 0.5) && close(r[1][1], 0.75), "{r:?}");
}

#[test]
fn rollout_of_real_vit_maps_is_a_distribution_per_token() {
    // The ViT fixture's PyTorch attention maps for its first golden image.
    let g = goldens("vit-cls");
    let a = &g["0.attentions"];
    let [layers, heads, n, n2] = a.shape[..] else {
        panic!("attention shape {:?}", a.shape)
    };
    assert_eq!(n, n2);
    let mut att = vec![vec![vec![vec![0f32; n]; n]; heads]; layers];
    for (i, &v) in a.data.iter().enumerate() {
        let (l, h, q, k) = (i / (heads * n * n), i / (n * n) % heads, i / n % n, i % n);
        att[l][h][q][k] = v as f32;
    }
    let r = attention_rollout(&att);
    assert_eq!(r.len(), n);
    for (q, row) in r.iter().enumerate() {
        let s: f32 = row.iter().sum();
        assert!((s - 1.0).abs() < 1e-5, "row {q} sums to {s}");
        assert!(row.iter().all(|&v| v >= 0.0));
        // The residual keeps a token's own share at least 0.5^layers.
        assert!(row[q] >= 0.5f32.powi(layers as i32) - 1e-6);
    }
    let side = ((n - 1) as f64).sqrt() as usize;
    let grid = cls_patch_grid(&r, side).expect("1 + side² tokens");
    assert_eq!(grid.len(), side);
    let max = grid.iter().flatten().cloned().fold(0f32, f32::max);
    assert!(close(max, 1.0));
    assert!(cls_patch_grid(&r, side + 1).is_none(), "a wrong side is refused");
}
