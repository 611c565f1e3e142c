//! The worker's service on the GPU: a model loads and answers there, and when the GPU
//! device is lost the same request is answered on the CPU, with the change reported and
//! nothing the user asked for dropped.
#![cfg(feature = "webgpu")]

mod common;

use common::gpu;

use webformer::protocol::{BackendKind, Request, Response, TextResult};
use webformer::service::{Ctx, Service};

fn handle(service: &mut Service, request: Request, files: Vec<Vec<u8>>) -> Response {
    pollster::block_on(service.handle(request, files, &Ctx::quiet()))
}

fn load(service: &mut Service, fixture: &str) -> Response {
    let names = ["config.json", "model.safetensors", "tokenizer.json"];
    let files = names
        .iter()
        .map(|n| std::fs::read(format!("tests/fixtures/{fixture}/{n}")).unwrap())
        .collect();
    let request = Request::LoadModel {
        source: fixture.into(),
        names: names.iter().map(|n| n.to_string()).collect(),
    };
    handle(service, request, files)
}

fn classify(service: &mut Service, texts: &[&str]) -> Vec<TextResult> {
    let request = Request::ClassifyText {
        texts: texts.iter().map(|t| t.to_string()).collect(),
        attentions: true,
    };
    match handle(service, request, Vec::new()) {
        Response::TextResults { results } => results,
        other => panic!("expected results, got {other:?}"),
    }
}

fn max_diff(a: &[TextResult], b: &[TextResult]) -> f32 {
    let mut worst = 0f32;
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.label, y.label);
        for (p, q) in x.probs.iter().zip(&y.probs) {
            worst = worst.max((p - q).abs());
        }
        let (ax, ay) = (x.attentions.as_ref().unwrap(), y.attentions.as_ref().unwrap());
        let flat = |a: &Vec<Vec<Vec<Vec<f32>>>>| {
            a.iter()
                .flatten()
                .flatten()
                .flatten()
                .copied()
                .collect::<Vec<_>>()
        };
        for (p, q) in flat(ax).iter().zip(flat(ay).iter()) {
            worst = worst.max((p - q).abs());
        }
    }
    worst
}

const TEXTS: [&str; 3] = ["a wonderful, moving film", "dull and far too long", "ok"];

#[test]
fn a_lost_gpu_moves_the_model_to_the_cpu_and_the_request_is_answered() {
    let Some(gpu) = gpu() else { return };
    let mut cpu_service = Service::new();
    assert!(matches!(
        load(&mut cpu_service, "bert-uncased-cls"),
        Response::ModelLoaded(_)
    ));
    let want = classify(&mut cpu_service, &TEXTS);

    let mut service = Service::new();
    service.use_gpu(gpu);
    match load(&mut service, "bert-uncased-cls") {
        Response::ModelLoaded(info) => assert!(info.backend.starts_with("WebGPU"), "{}", info.backend),
        other => panic!("{other:?}"),
    }
    let on_gpu = classify(&mut service, &TEXTS);
    let d = max_diff(&on_gpu, &want);
    eprintln!("GPU vs CPU through the service: max |Δ| {d:.2e}");
    assert!(d <= 2e-3, "GPU and CPU differ by {d}");
    assert_eq!(service.take_backend_change(), None);

    assert_eq!(
        handle(&mut service, Request::SimulateGpuLoss, Vec::new()),
        Response::Done
    );
    let after = classify(&mut service, &TEXTS);
    assert_eq!(
        max_diff(&after, &want),
        0.0,
        "after the loss the CPU answers, exactly as the CPU does"
    );
    let change = service
        .take_backend_change()
        .expect("the page is told about the change");
    assert_eq!(change.kind, BackendKind::Cpu);
    let reason = change.reason.unwrap();
    assert!(
        reason.contains("lost") && reason.contains("switched to the CPU"),
        "{reason}"
    );
    assert_eq!(service.backend_name(), "CPU");

    // A later model loads on the CPU, and there is no GPU left to lose.
    match load(&mut service, "distilbert-cls") {
        Response::ModelLoaded(info) => assert_eq!(info.backend, "CPU"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        handle(&mut service, Request::SimulateGpuLoss, Vec::new()),
        Response::Error { .. }
    ));
}

#[test]
fn a_gpu_lost_before_loading_loads_on_the_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut service = Service::new();
    service.use_gpu(gpu);
    assert_eq!(
        handle(&mut service, Request::SimulateGpuLoss, Vec::new()),
        Response::Done
    );
    match load(&mut service, "distilbert-cls") {
        Response::ModelLoaded(info) => assert_eq!(info.backend, "CPU"),
        other => panic!("{other:?}"),
    }
    assert!(service.take_backend_change().is_some());
    assert_eq!(classify(&mut service, &TEXTS).len(), 3);
}

#[test]
fn a_broken_file_on_the_gpu_is_the_files_fault_not_the_gpus() {
    let Some(gpu) = gpu() else { return };
    let mut service = Service::new();
    service.use_gpu(gpu);
    let mut files: Vec<Vec<u8>> = ["config.json", "model.safetensors", "tokenizer.json"]
        .iter()
        .map(|n| std::fs::read(format!("tests/fixtures/bert-uncased-cls/{n}")).unwrap())
        .collect();
    files[1].truncate(1000);
    let request = Request::LoadModel {
        source: "broken".into(),
        names: vec![
            "config.json".into(),
            "model.safetensors".into(),
            "tokenizer.json".into(),
        ],
    };
    match handle(&mut service, request, files) {
        Response::Error { message } => assert!(message.contains("model.safetensors"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(service.take_backend_change(), None, "the GPU is still fine");
    assert!(service.backend_name().starts_with("WebGPU"));
}
