//! Bad checkpoints get a specific error naming the file (and tensor), never a panic;
//! sharded checkpoints load like single files.

mod common;

use std::collections::HashMap;

use common::*;
use safetensors::tensor::TensorView;
use safetensors::SafeTensors;
use webformer::engine::backend::cpu::CpuBackend;
use webformer::engine::checkpoint::Checkpoint;
use webformer::engine::config::ModelConfig;
use webformer::engine::encoder::Want;
use webformer::engine::model::Model;

const NAME: &str = "bert-uncased-cls";

fn config_bytes() -> Vec<u8> {
    std::fs::read(fixture(NAME).join("config.json")).unwrap()
}

fn weights() -> Vec<u8> {
    std::fs::read(fixture(NAME).join("model.safetensors")).unwrap()
}

/// Re-serializes the fixture's tensors whose names pass `keep`.
fn subset(keep: impl Fn(&str) -> bool) -> Vec<u8> {
    let bytes = weights();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let views: HashMap<String, TensorView> = st.tensors().into_iter().filter(|(n, _)| keep(n)).collect();
    safetensors::serialize(&views, None).unwrap()
}

fn load(config: &[u8], files: &[(String, Vec<u8>)]) -> Result<Model<CpuBackend>, String> {
    let config = ModelConfig::from_json("config.json", config).map_err(|e| e.to_string())?;
    let ckpt = Checkpoint::from_files(files).map_err(|e| e.to_string())?;
    Model::load(&CpuBackend::new(), config, ckpt).map_err(|e| e.to_string())
}

fn err(config: &[u8], files: &[(String, Vec<u8>)]) -> String {
    match load(config, files) {
        Ok(_) => panic!("loading must fail"),
        Err(e) => e,
    }
}

#[test]
fn unknown_architecture() {
    let cfg = String::from_utf8(config_bytes())
        .unwrap()
        .replace("BertForSequenceClassification", "GPT2LMHeadModel");
    let e = err(cfg.as_bytes(), &[("model.safetensors".into(), weights())]);
    assert!(
        e.starts_with("config.json: architecture GPT2LMHeadModel is not supported"),
        "{e}"
    );
}

#[test]
fn config_that_is_not_json() {
    let e = err(b"<html>404</html>", &[]);
    assert!(e.starts_with("config.json: not JSON"), "{e}");
}

#[test]
fn missing_tensor_names_file_and_tensor() {
    let gone = "bert.encoder.layer.1.output.dense.weight";
    let e = err(
        &config_bytes(),
        &[("model.safetensors".into(), subset(|n| n != gone))],
    );
    assert_eq!(e, format!("model.safetensors: tensor {gone}: missing"));
}

#[test]
fn shape_mismatch_names_tensor_and_shapes() {
    let cfg = String::from_utf8(config_bytes())
        .unwrap()
        .replace("\"intermediate_size\": 48", "\"intermediate_size\": 50");
    let e = err(cfg.as_bytes(), &[("model.safetensors".into(), weights())]);
    assert_eq!(
        e,
        "model.safetensors: tensor bert.encoder.layer.0.intermediate.dense.weight: \
         shape [48, 32] does not match the config's [50, 32]"
    );
}

#[test]
fn corrupt_and_pickle_files() {
    let mut truncated = weights();
    truncated.truncate(truncated.len() / 2);
    let e = err(&config_bytes(), &[("model.safetensors".into(), truncated)]);
    assert!(
        e.starts_with("model.safetensors: not a valid safetensors file"),
        "{e}"
    );

    let e = err(
        &config_bytes(),
        &[("model.safetensors".into(), b"PK\x03\x04 zip of a pickle".to_vec())],
    );
    assert!(e.contains("PyTorch pickle"), "{e}");

    let e = err(
        &config_bytes(),
        &[("pytorch_model.bin".into(), vec![0x80, 2, 0x7d])],
    );
    assert!(
        e.starts_with("pytorch_model.bin: only a PyTorch pickle checkpoint"),
        "{e}"
    );

    let e = err(&config_bytes(), &[]);
    assert!(e.contains("model.safetensors is missing"), "{e}");
}

#[test]
fn pickle_only_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pytorch_model.bin"), [0x80, 2]).unwrap();
    let e = Checkpoint::from_dir(dir.path()).err().unwrap().to_string();
    assert!(
        e.contains("pytorch_model.bin: only a PyTorch pickle checkpoint"),
        "{e}"
    );
}

#[test]
fn sharded_checkpoint_loads_like_one_file() {
    let is_first = |n: &str| n.contains("layer.0") || n.contains("embeddings");
    let shard1 = subset(is_first);
    let shard2 = subset(|n| !is_first(n));
    let bytes = weights();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let weight_map: HashMap<String, String> = st
        .names()
        .into_iter()
        .map(|n| {
            let shard = if is_first(n) {
                "model-00001-of-00002.safetensors"
            } else {
                "model-00002-of-00002.safetensors"
            };
            (n.to_string(), shard.to_string())
        })
        .collect();
    let index = serde_json::to_vec(&serde_json::json!({"metadata": {}, "weight_map": weight_map})).unwrap();

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model.safetensors.index.json"), &index).unwrap();
    std::fs::write(dir.path().join("model-00001-of-00002.safetensors"), &shard1).unwrap();
    std::fs::write(dir.path().join("model-00002-of-00002.safetensors"), &shard2).unwrap();
    let config = ModelConfig::from_json("config.json", &config_bytes()).unwrap();
    let be = CpuBackend::new();
    let sharded = Model::load(&be, config, Checkpoint::from_dir(dir.path()).unwrap()).unwrap();
    let single = load_model(NAME);
    let ids = vec![vec![2u32, 40, 41, 42, 3]];
    let a = sharded.run_text(&be, &ids, Want::default()).unwrap();
    let b = single.run_text(&be, &ids, Want::default()).unwrap();
    assert_eq!(a[0].logits, b[0].logits);

    // A shard the index lists but the folder lacks.
    std::fs::remove_file(dir.path().join("model-00002-of-00002.safetensors")).unwrap();
    let e = Checkpoint::from_dir(dir.path()).err().unwrap().to_string();
    assert!(
        e.ends_with(
            "model.safetensors.index.json: lists shard model-00002-of-00002.safetensors, which is missing"
        ),
        "{e}"
    );
}

#[test]
fn wrong_input_kind_and_too_long_input() {
    let be = CpuBackend::new();
    let text = load_model(NAME);
    let e = text
        .run_images(&be, &[vec![0.0; 3]], Want::default())
        .err()
        .unwrap()
        .to_string();
    assert_eq!(e, "this is a text model; it takes text, not images");
    let e = text
        .run_text(&be, &[vec![1; 65]], Want::default())
        .err()
        .unwrap()
        .to_string();
    assert_eq!(e, "an input has 65 tokens; the model takes at most 64");
    let vit = load_model("vit-cls");
    let e = vit
        .run_images(&be, &[vec![0.0; 5]], Want::default())
        .err()
        .unwrap()
        .to_string();
    assert_eq!(e, "image 0 has 5 values; the model takes 3×32×32");
}
