// GELU in the erf form that BERT and ViT use, shared by `elementwise.wgsl` (the op on its
// own) and the matmul kernels (fused into their epilogue). Prepended to those sources in
// mod.rs, so it declares no bindings.

// erf(x), Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7), odd extension.
fn erf(x: f32) -> f32 {
    let z = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * z);
    let poly = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t
        + 0.254829592) * t;
    let y = 1.0 - poly * exp(-z * z);
    return select(y, -y, x < 0.0);
}

fn gelu_erf(v: f32) -> f32 {
    return 0.5 * v * (1.0 + erf(v * 0.70710678118654752));
}

// What the matmul epilogue applies after the bias (`Params.act`).
const ACT_NONE: u32 = 0u;
const ACT_GELU: u32 = 1u;
