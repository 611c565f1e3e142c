//! The page/worker protocol and the service behind it, as the worker runs them.

use webformer::protocol::{BackendChoice, BackendInfo, BackendKind, FromWorker, Request, Response, ToWorker};
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
