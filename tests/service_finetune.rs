//! Fine-tuning through the worker's service, as the page drives it: drop a CSV, train on the
//! loaded encoder with progress, classify with the head, export and import it, cancel.

use std::cell::RefCell;

use webformer::engine::finetune::TrainConfig;
use webformer::protocol::{Progress, Request, Response, TextResult};
use webformer::service::{Ctx, Service};

fn handle(service: &mut Service, request: Request, files: Vec<Vec<u8>>) -> Response {
    pollster::block_on(service.handle(request, files, &Ctx::quiet()))
}

fn with_encoder() -> Service {
    let mut service = Service::new();
    let names = ["config.json", "model.safetensors", "tokenizer.json"];
    let files = names
        .iter()
        .map(|n| std::fs::read(format!("tests/fixtures/bert-encoder/{n}")).unwrap())
        .collect();
    let r = handle(
        &mut service,
        Request::LoadModel {
            source: "bert-encoder".into(),
            names: names.iter().map(|n| n.to_string()).collect(),
        },
        files,
    );
    assert!(matches!(r, Response::ModelLoaded(_)), "{r:?}");
    service
}

fn csv() -> Vec<u8> {
    let mut csv = String::from("sentiment,review\n");
    for i in 0..30 {
        csv.push_str(&format!("good,\"great wonderful lovely film {i}\"\n"));
        csv.push_str(&format!("bad,\"awful boring dull, terrible {i}\"\n"));
    }
    csv.into_bytes()
}

fn config() -> TrainConfig {
    TrainConfig {
        epochs: 30,
        lr: 0.01,
        ..Default::default()
    }
}

fn classify(service: &mut Service, texts: &[&str]) -> Vec<TextResult> {
    let r = handle(
        service,
        Request::ClassifyText {
            texts: texts.iter().map(|t| t.to_string()).collect(),
            attentions: false,
        },
        Vec::new(),
    );
    match r {
        Response::TextResults { results } => results,
        other => panic!("{other:?}"),
    }
}

const TEXTS: [&str; 2] = ["great wonderful lovely film 3", "awful boring dull, terrible 3"];

#[test]
fn drop_train_classify_export_import() {
    let mut service = with_encoder();
    // An encoder alone cannot classify yet, and says what to do.
    match handle(
        &mut service,
        Request::ClassifyText {
            texts: vec!["hi".into()],
            attentions: false,
        },
        vec![],
    ) {
        Response::Error { message } => assert!(message.contains("train a head"), "{message}"),
        other => panic!("{other:?}"),
    }
    match handle(
        &mut service,
        Request::InspectCsv {
            name: "reviews.csv".into(),
        },
        vec![csv()],
    ) {
        Response::CsvInfo(info) => {
            assert_eq!(info.columns, ["sentiment", "review"]);
            assert_eq!((info.text_col, info.label_col), (Some(1), Some(0)));
            assert_eq!(info.rows, 60);
            assert_eq!(info.preview.len(), 5);
        }
        other => panic!("{other:?}"),
    }
    // A bad file gets its message and the CSV before it stays.
    match handle(
        &mut service,
        Request::InspectCsv { name: "x.csv".into() },
        vec![b"\0\x01\x02binary".to_vec()],
    ) {
        Response::Error { message } => assert!(message.starts_with("x.csv"), "{message}"),
        other => panic!("{other:?}"),
    }

    let seen = RefCell::new(Vec::<Progress>::new());
    let progress = |p: Progress| seen.borrow_mut().push(p);
    let ctx = Ctx {
        progress: &progress,
        ..Ctx::quiet()
    };
    let request = Request::Train {
        text_col: 1,
        label_col: 0,
        config: config(),
    };
    let summary = match pollster::block_on(service.handle(request.clone(), vec![], &ctx)) {
        Response::Trained(s) => *s,
        other => panic!("{other:?}"),
    };
    assert_eq!(summary.labels, ["bad", "good"]);
    assert_eq!(summary.class_counts, [30, 30]);
    assert!(!summary.cached_embeddings);
    assert_eq!(summary.metrics.accuracy, 1.0);
    let seen = seen.into_inner();
    let embedding: Vec<_> = seen.iter().filter(|p| p.stage == "embedding").collect();
    assert_eq!(embedding.first().unwrap().done, 0);
    assert_eq!(embedding.last().unwrap().done, 60);
    let epochs: Vec<_> = seen.iter().filter_map(|p| p.epoch.as_ref()).collect();
    assert_eq!(epochs.len(), summary.history.len());

    // The head classifies for the encoder, with the CSV's labels.
    let r = classify(&mut service, &TEXTS);
    assert_eq!((r[0].label.as_str(), r[1].label.as_str()), ("good", "bad"));
    assert_eq!(r[0].labels, ["bad", "good"]);

    // Training again with other settings reuses the embeddings.
    match handle(&mut service, request, vec![]) {
        Response::Trained(s) => assert!(s.cached_embeddings),
        other => panic!("{other:?}"),
    }

    // Export, then import into a fresh worker with the same encoder: the same answers.
    let (bytes, json) = match handle(&mut service, Request::ExportHead, vec![]) {
        Response::HeadFile { safetensors, json } => (safetensors, json),
        other => panic!("{other:?}"),
    };
    assert!(json.contains("\"labels\"") && json.contains("\"bert-encoder\""));
    let before = classify(&mut service, &TEXTS);
    let mut fresh = with_encoder();
    match handle(
        &mut fresh,
        Request::ImportHead {
            name: "head.safetensors".into(),
        },
        vec![bytes.clone()],
    ) {
        Response::HeadLoaded(info) => assert_eq!(info.labels, ["bad", "good"]),
        other => panic!("{other:?}"),
    }
    assert_eq!(classify(&mut fresh, &TEXTS), before);
    // The image section's import refuses a text head, says where it goes, and keeps the
    // text head in use.
    match handle(
        &mut fresh,
        Request::ImportImageHead {
            name: "head.safetensors".into(),
        },
        vec![bytes.clone()],
    ) {
        Response::Error { message } => assert_eq!(
            message,
            "head.safetensors is a text head (bad, good, trained on bert-encoder); import it on the Fine-tune tab"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(classify(&mut fresh, &TEXTS), before);
    // A broken head file is refused and the installed head stays.
    match handle(
        &mut fresh,
        Request::ImportHead {
            name: "bad.safetensors".into(),
        },
        vec![bytes[..50].to_vec()],
    ) {
        Response::Error { message } => assert!(message.starts_with("bad.safetensors"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(classify(&mut fresh, &TEXTS), before);
}

#[test]
fn a_model_with_its_own_classifier_gets_both_answers() {
    let mut service = with_encoder();
    handle(
        &mut service,
        Request::InspectCsv {
            name: "reviews.csv".into(),
        },
        vec![csv()],
    );
    let r = handle(
        &mut service,
        Request::Train {
            text_col: 1,
            label_col: 0,
            config: config(),
        },
        vec![],
    );
    assert!(matches!(r, Response::Trained(_)));
    let bytes = match handle(&mut service, Request::ExportHead, vec![]) {
        Response::HeadFile { safetensors, .. } => safetensors,
        other => panic!("{other:?}"),
    };
    // bert-uncased-cls is 32 wide, the head 36: refused by name.
    let mut other = Service::new();
    let names = ["config.json", "model.safetensors", "tokenizer.json"];
    let files = names
        .iter()
        .map(|n| std::fs::read(format!("tests/fixtures/bert-uncased-cls/{n}")).unwrap())
        .collect();
    handle(
        &mut other,
        Request::LoadModel {
            source: "cls".into(),
            names: names.iter().map(|n| n.to_string()).collect(),
        },
        files,
    );
    match handle(
        &mut other,
        Request::ImportHead {
            name: "head.safetensors".into(),
        },
        vec![bytes],
    ) {
        Response::Error { message } => assert!(message.contains("36-wide"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn cancel_stops_embedding_and_training_needs_a_csv_and_a_model() {
    let mut service = Service::new();
    let train = Request::Train {
        text_col: 1,
        label_col: 0,
        config: config(),
    };
    match handle(&mut service, train.clone(), vec![]) {
        Response::Error { message } => assert_eq!(message, "drop a CSV first"),
        other => panic!("{other:?}"),
    }
    handle(
        &mut service,
        Request::InspectCsv {
            name: "reviews.csv".into(),
        },
        vec![csv()],
    );
    match handle(&mut service, train.clone(), vec![]) {
        Response::Error { message } => {
            assert!(message.starts_with("load an encoder model first"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let mut service = with_encoder();
    handle(
        &mut service,
        Request::InspectCsv {
            name: "reviews.csv".into(),
        },
        vec![csv()],
    );
    let batches = RefCell::new(0);
    let progress = |p: Progress| {
        if p.stage == "embedding" {
            *batches.borrow_mut() += 1;
        }
    };
    let cancelled = || *batches.borrow() >= 2;
    let ctx = Ctx {
        progress: &progress,
        cancelled: &cancelled,
        ..Ctx::quiet()
    };
    match pollster::block_on(service.handle(train, vec![], &ctx)) {
        Response::Error { message } => assert_eq!(message, "cancelled"),
        other => panic!("{other:?}"),
    }
    assert_eq!(*batches.borrow(), 2, "stopped after the first batch");
}

/// Cancel takes effect between mini-batches, not only at the end of an epoch: the worker's
/// pause (where the browser delivers a cancel) comes after every batch. Before the first epoch
/// ends, a cancel keeps the head from before; later, the best finished epoch's head.
#[test]
fn cancel_stops_training_within_a_batch() {
    let mut service = with_encoder();
    handle(
        &mut service,
        Request::InspectCsv {
            name: "reviews.csv".into(),
        },
        vec![csv()],
    );
    let config = TrainConfig {
        batch_size: 4,
        ..config()
    };
    let train = Request::Train {
        text_col: 1,
        label_col: 0,
        config,
    };
    // A first head, trained to the end (and the embeddings cached, so from now on every
    // pause is a training batch's).
    let first = match handle(&mut service, train.clone(), vec![]) {
        Response::Trained(s) => *s,
        other => panic!("{other:?}"),
    };
    let val: usize = first.metrics.confusion.iter().flatten().sum();
    let per_epoch = (60 - val).div_ceil(4);
    assert_eq!(per_epoch, 12, "{val} validation rows");
    let before = classify(&mut service, &TEXTS);

    // Cancelled after `k` batches; returns the answer and the batches run.
    let run = |service: &mut Service, k: usize| {
        let pauses = std::cell::Cell::new(0usize);
        let epochs = std::cell::Cell::new(0usize);
        let pause = || -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
            pauses.set(pauses.get() + 1);
            Box::pin(std::future::ready(()))
        };
        let cancelled = || pauses.get() >= k;
        let progress = |p: Progress| {
            if p.epoch.is_some() {
                epochs.set(epochs.get() + 1);
            }
        };
        let ctx = Ctx {
            progress: &progress,
            cancelled: &cancelled,
            pause: &pause,
        };
        let r = pollster::block_on(service.handle(train.clone(), vec![], &ctx));
        (r, pauses.get(), epochs.get())
    };

    // In the first epoch: no head from this run, the one from before stays.
    match run(&mut service, 5) {
        (Response::Error { message }, 5, 0) => {
            assert!(message.contains("cancelled before the first epoch"), "{message}")
        }
        (other, batches, epochs) => panic!("{batches} batches, {epochs} epochs: {other:?}"),
    }
    assert_eq!(
        classify(&mut service, &TEXTS),
        before,
        "the head from before is kept"
    );

    // Five batches into the second epoch: the first epoch's head is kept, the rest dropped.
    match run(&mut service, per_epoch + 5) {
        (Response::Trained(s), batches, 1) => {
            assert_eq!(batches, per_epoch + 5, "stopped at the cancel");
            assert!(s.cancelled);
            assert_eq!(s.history.len(), 1);
            assert_eq!(s.best_epoch, 1);
            assert!(s.cached_embeddings);
        }
        (other, batches, epochs) => panic!("{batches} batches, {epochs} epochs: {other:?}"),
    }
}
