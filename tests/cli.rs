//! The `webformer` CLI contract: one JSON object per input per line, errors on stderr
//! with a non-zero exit.

mod common;

use common::*;
use serde_json::Value;

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn text_prints_one_line_per_input_matching_the_goldens() {
    let name = "bert-uncased-cls";
    let dir = fixture(name);
    let meta = golden_json(name);
    let g = goldens(name);
    let texts: Vec<&str> = meta["texts"]
        .as_array()
        .unwrap()
        .iter()
        .take(3)
        .map(|t| t.as_str().unwrap())
        .collect();
    let mut args = vec!["text", "--model", dir.to_str().unwrap(), "--attentions"];
    args.extend(&texts);
    let (code, lines, stderr) = webformer(&args);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines.len(), texts.len());
    for (i, line) in lines.iter().enumerate() {
        let ids: Vec<f64> = line["token_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(ids, g[&format!("{i}.input_ids")].data);
        let d = max_abs_diff(&floats(&line["logits"]), &g[&format!("{i}.logits")].data);
        assert!(d <= 1e-4, "logits differ by {d:e}");
        let probs = floats(&line["probs"]);
        assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(["negative", "positive", "neutral"].contains(&line["label"].as_str().unwrap()));
        let attn = line["attentions"].as_array().unwrap();
        let n = ids.len();
        assert_eq!(
            (attn.len(), attn[0].as_array().unwrap().len()),
            (2, 4),
            "[layer][head]"
        );
        assert_eq!(
            attn[0][0].as_array().unwrap().len(),
            n,
            "queries over the input's own tokens"
        );
        assert_eq!(
            attn[0][0][0].as_array().unwrap().len(),
            n,
            "keys over the input's own tokens"
        );
    }
}

#[test]
fn embed_prints_mean_pooled_embedding() {
    let name = "bert-encoder";
    let dir = fixture(name);
    let text = golden_json(name)["texts"][0].as_str().unwrap().to_string();
    let (code, lines, stderr) = webformer(&["embed", "--model", dir.to_str().unwrap(), &text]);
    assert_eq!(code, 0, "{stderr}");
    assert!(lines[0].get("logits").is_none() && lines[0].get("attentions").is_none());
    let d = max_abs_diff(
        &floats(&lines[0]["embedding"]),
        &goldens(name)["0.embedding"].data,
    );
    assert!(d <= 1e-4, "embedding differs by {d:e}");
}

#[test]
fn image_classifies_files() {
    let dir = fixture("vit-fashion-mnist");
    let png = dir.join("sample-0.png");
    let (code, lines, stderr) =
        webformer(&["image", "--model", dir.to_str().unwrap(), png.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines[0]["label"], "Ankle boot");
    assert_eq!(floats(&lines[0]["probs"]).len(), 10);
}

#[test]
fn errors_go_to_stderr_with_nonzero_exit() {
    let enc = fixture("bert-encoder");
    let (code, lines, stderr) = webformer(&["text", "--model", enc.to_str().unwrap(), "hi"]);
    assert_ne!(code, 0);
    assert!(lines.is_empty());
    assert!(stderr.contains("has no classifier"), "{stderr}");

    let (code, _, stderr) = webformer(&["text", "--model", "/no/such/model", "hi"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("/no/such/model"), "{stderr}");

    let vit = fixture("vit-cls");
    let not_image = fixture("bert-encoder").join("config.json");
    let (code, _, stderr) = webformer(&[
        "image",
        "--model",
        vit.to_str().unwrap(),
        not_image.to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("config.json: not a usable image"), "{stderr}");
}

#[cfg(feature = "webgpu")]
fn diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// `--backend webgpu` runs the same kernels through wgpu (lavapipe here) and prints the
/// same lines as the CPU, within the GPU tolerance.
#[cfg(feature = "webgpu")]
#[test]
fn backend_webgpu_prints_what_the_cpu_prints() {
    if std::env::var("WEBFORMER_NO_GPU").as_deref() == Ok("1") {
        eprintln!("SKIPPED: WEBFORMER_NO_GPU=1");
        return;
    }
    for (cmd, name, inputs) in [
        (
            "text",
            "bert-uncased-cls",
            vec!["a lovely film".to_string(), "dull".to_string()],
        ),
        ("embed", "bert-encoder", vec!["hello world".to_string()]),
        (
            "image",
            "vit-cls",
            vec![fixture("images").join("exif6_40x24.jpg").display().to_string()],
        ),
    ] {
        let dir = fixture(name);
        let mut args = vec![cmd, "--model", dir.to_str().unwrap(), "--attentions"];
        args.extend(inputs.iter().map(String::as_str));
        let (code, cpu, stderr) = webformer(&args);
        assert_eq!(code, 0, "{stderr}");
        args.extend(["--backend", "webgpu"]);
        let (code, gpu, stderr) = webformer(&args);
        assert_eq!(code, 0, "{stderr}");
        assert!(stderr.contains("using WebGPU"), "{stderr}");
        assert_eq!(cpu.len(), gpu.len());
        let mut worst = 0f32;
        for (c, g) in cpu.iter().zip(&gpu) {
            assert_eq!(c["label"], g["label"]);
            assert_eq!(c["token_ids"], g["token_ids"]);
            for key in ["logits", "embedding"] {
                if !c[key].is_null() {
                    worst = worst.max(diff(&floats(&c[key]), &floats(&g[key])));
                }
            }
            let flat = |v: &Value| -> Vec<f32> {
                let mut out = Vec::new();
                fn walk(v: &Value, out: &mut Vec<f32>) {
                    match v {
                        Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
                        x => out.push(x.as_f64().unwrap() as f32),
                    }
                }
                walk(v, &mut out);
                out
            };
            let (ca, ga) = (flat(&c["attentions"]), flat(&g["attentions"]));
            assert!(!ca.is_empty() && ca.len() == ga.len());
            worst = worst.max(diff(&ca, &ga));
        }
        eprintln!("{cmd} {name}: --backend webgpu vs cpu max |Δ| {worst:.2e}");
        assert!(worst <= 2e-3, "{cmd} {name}: {worst}");
    }
}
