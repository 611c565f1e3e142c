//! Shared by the engine tests: fixture loading and golden comparisons.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use webformer::engine::backend::cpu::CpuBackend;
use webformer::engine::checkpoint::Checkpoint;
use webformer::engine::config::ModelConfig;
use webformer::engine::model::Model;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn load_model(name: &str) -> Model<CpuBackend> {
    let dir = fixture(name);
    let cfg = std::fs::read(dir.join("config.json")).unwrap();
    let config = ModelConfig::from_json("config.json", &cfg).unwrap();
    let ckpt = Checkpoint::from_dir(&dir).unwrap();
    Model::load(&CpuBackend::new(), config, ckpt).unwrap()
}

/// A golden tensor: shape and values (integers converted to f64 exactly).
pub struct Golden {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

pub fn goldens(name: &str) -> HashMap<String, Golden> {
    let bytes = std::fs::read(fixture(name).join("golden.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(k, v)| {
            let raw = v.data();
            let data: Vec<f64> = match v.dtype() {
                Dtype::F32 => raw
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
                    .collect(),
                Dtype::I64 => raw
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
                    .collect(),
                d => panic!("unexpected dtype {d:?}"),
            };
            (
                k,
                Golden {
                    shape: v.shape().to_vec(),
                    data,
                },
            )
        })
        .collect()
}

pub fn golden_json(name: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixture(name).join("golden.json")).unwrap()).unwrap()
}

/// Largest absolute difference; panics when lengths differ.
pub fn max_abs_diff(ours: &[f32], golden: &[f64]) -> f64 {
    assert_eq!(ours.len(), golden.len(), "length differs");
    ours.iter()
        .zip(golden)
        .map(|(&a, &b)| (a as f64 - b).abs())
        .fold(0.0, f64::max)
}

pub fn flatten3(x: &[Vec<Vec<f32>>]) -> Vec<f32> {
    x.iter().flatten().flatten().copied().collect()
}

pub fn flatten4(x: &[Vec<Vec<Vec<f32>>>]) -> Vec<f32> {
    x.iter().flatten().flatten().flatten().copied().collect()
}

/// The golden token id sequences `{i}.input_ids`, in order.
pub fn golden_text_inputs(g: &HashMap<String, Golden>) -> Vec<Vec<u32>> {
    (0..)
        .map_while(|i| g.get(&format!("{i}.input_ids")))
        .map(|t| t.data.iter().map(|&v| v as u32).collect())
        .collect()
}

/// The golden preprocessed images `{i}.pixel_values`, in order.
pub fn golden_images(g: &HashMap<String, Golden>) -> Vec<Vec<f32>> {
    (0..)
        .map_while(|i| g.get(&format!("{i}.pixel_values")))
        .map(|t| t.data.iter().map(|&v| v as f32).collect())
        .collect()
}

/// The GPU backend, or `None` (the test returns) when `WEBFORMER_NO_GPU=1` and there is none;
/// without an adapter and without that variable the test fails loudly.
#[cfg(feature = "webgpu")]
pub fn gpu() -> Option<webformer::engine::backend::webgpu::WgpuBackend> {
    use webformer::engine::backend::Backend;
    match webformer::engine::backend::webgpu::WgpuBackend::new() {
        Ok(be) => {
            eprintln!("using {}", be.name());
            Some(be)
        }
        Err(e) if std::env::var("WEBFORMER_NO_GPU").as_deref() == Ok("1") => {
            eprintln!("SKIPPED: WEBFORMER_NO_GPU=1 and the GPU backend is unavailable: {e}");
            None
        }
        Err(e) => panic!(
            "the WebGPU backend could not start: {e}. Install a Vulkan driver (e.g. \
             mesa-vulkan-drivers for lavapipe) or set WEBFORMER_NO_GPU=1 to skip these tests"
        ),
    }
}

/// Deterministic pseudo-random values in [-scale, scale].
pub fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// Runs the `webformer` CLI: exit code, stdout parsed as one JSON value per line, stderr.
pub fn webformer(args: &[&str]) -> (i32, Vec<serde_json::Value>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_webformer"))
        .args(args)
        .output()
        .unwrap();
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every stdout line is JSON"))
        .collect();
    (
        out.status.code().unwrap_or(-1),
        lines,
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// GELU (erf form) in f64, the reference for the CPU kernels' GELU.
pub fn gelu64(x: f64) -> f64 {
    0.5 * x * (1.0 + erf64(x / std::f64::consts::SQRT_2))
}

/// erf in f64: Taylor series below 3, the erfc continued fraction beyond (where the series
/// would cancel catastrophically). Good to ~1e-15 here.
pub fn erf64(x: f64) -> f64 {
    let a = x.abs();
    let r = if a < 3.0 {
        let (mut sum, mut term) = (0.0, a);
        for n in 0..100 {
            sum += term / (2 * n + 1) as f64;
            term *= -a * a / (n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        let mut f = a;
        for k in (1..60).rev() {
            f = a + (k as f64 / 2.0) / f;
        }
        1.0 - (-a * a).exp() / (f * std::f64::consts::PI.sqrt())
    };
    r.copysign(x)
}
