//! Image classification through the worker's service: several images in one request, each
//! with its answer; a file that is not an image gets its own message, the others their answers.

use webformer::engine::model::softmax;
use webformer::protocol::{Request, Response};
use webformer::service::{Ctx, Service};

fn handle(service: &mut Service, request: Request, files: Vec<Vec<u8>>) -> Response {
    pollster::block_on(service.handle(request, files, &Ctx::quiet()))
}

fn load(service: &mut Service, fixture: &str, names: &[&str]) {
    let files = names
        .iter()
        .map(|n| std::fs::read(format!("tests/fixtures/{fixture}/{n}")).unwrap())
        .collect();
    let r = handle(
        service,
        Request::LoadModel {
            source: fixture.into(),
            names: names.iter().map(|n| n.to_string()).collect(),
        },
        files,
    );
    assert!(matches!(r, Response::ModelLoaded(_)), "{r:?}");
}

#[test]
fn images_get_pytorchs_answers_and_a_bad_file_its_message() {
    let mut service = Service::new();
    let dir = "vit-fashion-mnist";
    load(
        &mut service,
        dir,
        &["config.json", "model.safetensors", "preprocessor_config.json"],
    );
    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("tests/fixtures/{dir}/golden_samples.json")).unwrap(),
    )
    .unwrap();
    let samples = golden["samples"].as_array().unwrap();
    let mut names: Vec<String> = samples
        .iter()
        .map(|s| s["file"].as_str().unwrap().to_string())
        .collect();
    let mut files: Vec<Vec<u8>> = names
        .iter()
        .map(|n| std::fs::read(format!("tests/fixtures/{dir}/{n}")).unwrap())
        .collect();
    names.insert(1, "notes.png".into());
    files.insert(1, b"this is text, not a picture".to_vec());
    let results = match handle(
        &mut service,
        Request::ClassifyImages {
            names,
            attentions: true,
        },
        files,
    ) {
        Response::ImageResults { results } => results,
        other => panic!("{other:?}"),
    };
    assert_eq!(results.len(), 4);
    let bad = &results[1];
    assert!(
        bad.error
            .as_deref()
            .unwrap()
            .starts_with("notes.png: not a usable image"),
        "{bad:?}"
    );
    let good: Vec<_> = results.iter().filter(|r| r.error.is_none()).collect();
    let mut worst = 0f32;
    for (r, s) in good.iter().zip(samples) {
        assert_eq!(r.label, s["predicted_label"].as_str().unwrap());
        assert_eq!(r.labels.len(), 10);
        let logits: Vec<f32> = s["logits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        for (p, q) in r.probs.iter().zip(softmax(&logits)) {
            worst = worst.max((p - q).abs());
        }
        let a = r.attentions.as_ref().unwrap();
        assert!(!a.is_empty() && a[0][0].len() == a[0][0][0].len());
    }
    assert!(worst <= 1e-4, "{worst}");

    // A text model refuses images with a reason.
    let mut text = Service::new();
    load(
        &mut text,
        "bert-uncased-cls",
        &["config.json", "model.safetensors", "tokenizer.json"],
    );
    match handle(
        &mut text,
        Request::ClassifyImages {
            names: vec!["a.png".into()],
            attentions: false,
        },
        vec![vec![1]],
    ) {
        Response::Error { message } => assert!(message.contains("takes text"), "{message}"),
        other => panic!("{other:?}"),
    }
}
