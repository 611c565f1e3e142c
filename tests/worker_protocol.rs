//! The page/worker protocol and the service behind it, as the worker runs them.

use webformer::protocol::{
    BackendChoice, BackendInfo, BackendKind, FromWorker, Request, Response, TextResult, ToWorker,
};
use webformer::service::{Ctx, Service};

/// What the worker does with one request (no files, progress ignored).
fn handle(service: &mut Service, request: Request) -> Response {
    pollster::block_on(service.handle(request, Vec::new(), &Ctx::quiet()))
}

fn demo_json() -> String {
    std::fs::read_to_string("public/demo/tokenizer.json").unwrap()
}

#[test]
fn messages_round_trip_as_json() {
    let msg = ToWorker {
        id: 7,
        request: Request::Tokenize {
            text: "héllo 👋".into(),
        },
    };
    assert_eq!(ToWorker::from_json(&msg.to_json()).unwrap(), msg);
    let msg = FromWorker {
        id: 7,
        response: Response::TokenizerLoaded {
            source: "x".into(),
            vocab_size: 3,
        },
    };
    assert_eq!(FromWorker::from_json(&msg.to_json()).unwrap(), msg);
    let json = ToWorker {
        id: 1,
        request: Request::ProbeBackend {
            choice: BackendChoice::Webgpu,
        },
    }
    .to_json();
    assert_eq!(
        json,
        r#"{"id":1,"request":{"type":"probe_backend","choice":"webgpu"}}"#
    );
    assert!(ToWorker::from_json("{\"id\":1}")
        .unwrap_err()
        .starts_with("malformed request"));
}

#[test]
fn tokenize_before_load_says_so() {
    let mut service = Service::new();
    let r = handle(&mut service, Request::Tokenize { text: "hi".into() });
    assert_eq!(
        r,
        Response::Error {
            message: "no tokenizer is loaded yet".into()
        }
    );
}

#[test]
fn load_then_tokenize_and_a_bad_file_keeps_the_old_tokenizer() {
    let mut service = Service::new();
    let r = handle(
        &mut service,
        Request::LoadTokenizer {
            source: "demo".into(),
            json: demo_json(),
        },
    );
    assert_eq!(
        r,
        Response::TokenizerLoaded {
            source: "demo".into(),
            vocab_size: 30522
        }
    );

    let r = handle(
        &mut service,
        Request::LoadTokenizer {
            source: "bad.json".into(),
            json: "[1,2".into(),
        },
    );
    match r {
        Response::Error { message } => assert!(
            message.starts_with("bad.json: not a valid tokenizer"),
            "{message}"
        ),
        other => panic!("expected an error, got {other:?}"),
    }

    match handle(&mut service, Request::Tokenize { text: "Hello".into() }) {
        Response::Tokens { tokens } => {
            assert_eq!(
                tokens.iter().map(|t| t.id).collect::<Vec<_>>(),
                vec![101, 7592, 102]
            )
        }
        other => panic!("expected tokens, got {other:?}"),
    }
}

#[test]
fn backend_labels() {
    let gpu = BackendInfo {
        kind: BackendKind::Webgpu,
        adapter: Some("google swiftshader".into()),
        reason: None,
    };
    assert_eq!(gpu.label(), "WebGPU: google swiftshader");
    let cpu = BackendInfo {
        kind: BackendKind::Cpu,
        adapter: None,
        reason: Some("no adapter".into()),
    };
    assert_eq!(cpu.label(), "CPU (wasm SIMD) — no adapter");
    assert_eq!(BackendChoice::parse("cpu"), Some(BackendChoice::Cpu));
    assert_eq!(BackendChoice::parse("gpu"), None);
}

/// The token view shows what the model reads: loading a text model switches the service to
/// its tokenizer (here a cased one, after the uncased demo).
#[test]
fn a_loaded_text_model_brings_its_tokenizer() {
    let mut service = Service::new();
    handle(
        &mut service,
        Request::LoadTokenizer {
            source: "demo".into(),
            json: demo_json(),
        },
    );
    let ids = |service: &mut Service| match handle(
        service,
        Request::Tokenize {
            text: "Hello World".into(),
        },
    ) {
        Response::Tokens { tokens } => tokens.iter().map(|t| t.id).collect::<Vec<_>>(),
        other => panic!("expected tokens, got {other:?}"),
    };
    let demo = ids(&mut service);

    let dir = std::path::Path::new("tests/fixtures/bert-cased-cls");
    let names = ["config.json", "model.safetensors", "tokenizer.json"];
    let files = names
        .iter()
        .map(|n| std::fs::read(dir.join(n)).unwrap())
        .collect();
    let r = pollster::block_on(service.handle(
        Request::LoadModel {
            source: "bert-cased-cls".into(),
            names: names.iter().map(|n| n.to_string()).collect(),
        },
        files,
        &Ctx::quiet(),
    ));
    assert!(matches!(r, Response::ModelLoaded(_)), "{r:?}");
    let own = webformer::engine::tokenize::TextTokenizer::from_bytes(
        "tokenizer.json",
        &std::fs::read(dir.join("tokenizer.json")).unwrap(),
        None,
    )
    .unwrap()
    .encode("Hello World")
    .unwrap();
    let want: Vec<u32> = own.iter().map(|t| t.id).collect();
    assert_ne!(want, demo, "the fixture's tokenizer differs from the demo's");
    assert_eq!(ids(&mut service), want);
}

#[test]
fn attention_maps_cross_as_base64_bit_exact() {
    // [2 layers][3 heads][4 queries][5 keys] of awkward values: every bit must survive.
    let mut x = 0.1f32;
    let maps: Vec<Vec<Vec<Vec<f32>>>> = (0..2)
        .map(|_| {
            (0..3)
                .map(|_| {
                    (0..4)
                        .map(|_| {
                            (0..5)
                                .map(|_| {
                                    x = (x * 1.618_034 + 0.007).fract() + f32::EPSILON;
                                    x / 3.0
                                })
                                .collect()
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    let msg = FromWorker {
        id: 3,
        response: Response::TextResults {
            results: vec![TextResult {
                text: "t".into(),
                tokens: Vec::new(),
                label: "a".into(),
                labels: vec!["a".into()],
                probs: vec![1.0],
                head: None,
                attentions: Some(maps.clone()),
            }],
        },
    };
    let json = msg.to_json();
    assert!(json.contains(r#""shape":[2,3,4,5]"#), "{json}");
    let back = FromWorker::from_json(&json).unwrap();
    let Response::TextResults { results } = back.response else {
        panic!("not text results")
    };
    let got = results[0].attentions.as_ref().unwrap();
    let bits = |m: &Vec<Vec<Vec<Vec<f32>>>>| -> Vec<u32> {
        m.iter()
            .flatten()
            .flatten()
            .flatten()
            .map(|v| v.to_bits())
            .collect()
    };
    assert_eq!(bits(got), bits(&maps));
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].len(), 3);
    assert_eq!(got[1][2].len(), 4);
    assert_eq!(got[1][2][3].len(), 5);

    // No maps stay no maps; a shape that does not match the bytes is refused with a reason.
    let none = FromWorker {
        id: 4,
        response: Response::TextResults {
            results: vec![TextResult {
                attentions: None,
                ..match &msg.response {
                    Response::TextResults { results } => results[0].clone(),
                    _ => unreachable!(),
                }
            }],
        },
    };
    assert_eq!(FromWorker::from_json(&none.to_json()).unwrap(), none);
    let bad = json.replace(r#""shape":[2,3,4,5]"#, r#""shape":[2,3,4,6]"#);
    let err = FromWorker::from_json(&bad).unwrap_err();
    assert!(err.contains("need Some(576) bytes, got 480"), "{err}");
}
