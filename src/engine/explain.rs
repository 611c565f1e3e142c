//! Summaries of attention maps for the explorer: no model code, only arithmetic on the
//! `[layer][head][query][key]` probabilities a forward pass returns.

/// `[layer][head][query][key]`, each query row a probability distribution.
pub type Attentions = [Vec<Vec<Vec<f32>>>];

/// Attention rollout (Abnar & Zuidema, 2020): how much each input token flows into each
/// token's final representation, through all layers. Per layer the heads are averaged, the
/// residual connection is modelled by adding the identity (`0.5·A + 0.5·I`), rows are
/// renormalised, and the layers are multiplied in order: `R = Â_L · … · Â_1`.
///
/// Returns `R` (`[query][key]`, rows summing to 1); for a ViT, row 0 is the `[CLS]` token's
/// attribution over the patches. Empty input gives an empty matrix.
pub fn attention_rollout(att: &Attentions) -> Vec<Vec<f32>> {
    let n = att.first().and_then(|l| l.first()).map_or(0, |h| h.len());
    let mut r = identity(n);
    for layer in att {
        let a = residual_mean(layer, n);
        r = matmul(&a, &r);
    }
    r
}

/// One layer's heads averaged, plus the identity, rows renormalised (f64 inside: a product
/// of 12 of these keeps its rows summing to 1 within f32 rounding).
fn residual_mean(heads: &[Vec<Vec<f32>>], n: usize) -> Vec<Vec<f64>> {
    let h = heads.len().max(1) as f64;
    (0..n)
        .map(|q| {
            let mut row: Vec<f64> = (0..n)
                .map(|k| 0.5 * heads.iter().map(|m| m[q][k] as f64).sum::<f64>() / h)
                .collect();
            row[q] += 0.5;
            let s: f64 = row.iter().sum();
            if s > 0.0 {
                row.iter_mut().for_each(|v| *v /= s);
            }
            row
        })
        .collect()
}

fn identity(n: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|i| (0..n).map(|j| if i == j { 1.0 } else { 0.0 }).collect())
        .collect()
}

/// `a · b` with `a` in f64 and `b` in f32, rounded to f32.
fn matmul(a: &[Vec<f64>], b: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let n = b.len();
    a.iter()
        .map(|row| {
            (0..n)
                .map(|j| {
                    row.iter()
                        .zip(b)
                        .map(|(&x, brow)| x * brow[j] as f64)
                        .sum::<f64>() as f32
                })
                .collect()
        })
        .collect()
}

/// The `[CLS]` token's attention (query row 0) over the image patches of one layer and
/// head, as a `side × side` grid, scaled so its largest cell is 1 (for drawing); `None`
/// when the map does not hold `1 + side²` tokens.
pub fn cls_patch_grid(map: &[Vec<f32>], side: usize) -> Option<Vec<Vec<f32>>> {
    let row = map.first()?;
    if side == 0 || row.len() != 1 + side * side {
        return None;
    }
    let patches = &row[1..];
    let max = patches.iter().cloned().fold(0f32, f32::max);
    let scale = if max > 0.0 { 1.0 / max } else { 0.0 };
    Some(
        patches
            .chunks(side)
            .map(|r| r.iter().map(|v| v * scale).collect())
            .collect(),
    )
}
