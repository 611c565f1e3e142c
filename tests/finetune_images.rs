//! Real learning on images: a few hundred Fashion-MNIST test images written as PNG files in
//! class folders (with a stray text file, as real folders have), read the way the CLI reads
//! them, trained on through the worker's service on the small trained ViT
//! (tests/fixtures/vit-fashion-mnist), then judged on other, held-out images through the
//! image panel's request (`ClassifyImages` gives the head's answer next to the model's).
//! The same folders through the CLI: `train --images` and `image --head`.
//!
//! The images come from Debian's `dataset-fashion-mnist` (scripts/setup.sh installs it).

mod common;

use std::cell::RefCell;
use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use webformer::engine::finetune::TrainConfig;
use webformer::engine::image_dataset::{place_files, read_class_folders, Placed};
use webformer::protocol::{ImageResult, Progress, Request, Response};
use webformer::service::{Ctx, Service};

const DATA: &str = "/usr/share/datasets/fashion-mnist";
/// Folder names (a class name cannot hold the `/` of "T-shirt/top").
const CLASSES: [&str; 10] = [
    "T-shirt",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];
const TRAIN_PER_CLASS: usize = 30;
/// Held-out images come from here on in the test set, never seen in training.
const HELD_OUT_FROM: usize = 5_000;
const HELD_OUT: usize = 500;

fn model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vit-fashion-mnist")
}

/// An idx file's uint8 payload after its header.
fn read_idx(name: &str) -> Vec<u8> {
    let path = Path::new(DATA).join(name);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: this test needs Debian's dataset-fashion-mnist; run scripts/setup.sh",
            path.display()
        )
    });
    let mut data = Vec::new();
    GzDecoder::new(file).read_to_end(&mut data).unwrap();
    let ndim = data[3] as usize;
    data[4 + 4 * ndim..].to_vec()
}

struct FashionMnist {
    images: Vec<u8>,
    labels: Vec<u8>,
}

impl FashionMnist {
    fn load() -> Self {
        let images = read_idx("t10k-images-idx3-ubyte.gz");
        let labels = read_idx("t10k-labels-idx1-ubyte.gz");
        assert_eq!(images.len(), 10_000 * 28 * 28);
        assert_eq!(labels.len(), 10_000);
        Self { images, labels }
    }

    fn png(&self, i: usize) -> Vec<u8> {
        let grey = image::GrayImage::from_raw(28, 28, self.images[i * 784..(i + 1) * 784].to_vec()).unwrap();
        let mut out = std::io::Cursor::new(Vec::new());
        grey.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    /// Writes the first `TRAIN_PER_CLASS` images of every class as `DIR/<class>/<i>.png`,
    /// plus a text file that is not an image.
    fn write_class_folders(&self, dir: &Path) -> usize {
        let mut per_class = [0usize; 10];
        let mut written = 0;
        for i in 0..HELD_OUT_FROM {
            let c = self.labels[i] as usize;
            if per_class[c] == TRAIN_PER_CLASS {
                continue;
            }
            per_class[c] += 1;
            let folder = dir.join(CLASSES[c]);
            std::fs::create_dir_all(&folder).unwrap();
            std::fs::write(folder.join(format!("{i:05}.png")), self.png(i)).unwrap();
            written += 1;
        }
        assert_eq!(per_class, [TRAIN_PER_CLASS; 10]);
        std::fs::write(dir.join("Bag").join("notes.txt"), b"bags photographed in 2017\n").unwrap();
        written
    }
}

fn handle(service: &mut Service, request: Request, files: Vec<Vec<u8>>) -> Response {
    pollster::block_on(service.handle(request, files, &Ctx::quiet()))
}

fn load_vit(service: &mut Service) {
    let names = ["config.json", "model.safetensors", "preprocessor_config.json"];
    let files = names
        .iter()
        .map(|n| std::fs::read(model_dir().join(n)).unwrap())
        .collect();
    let r = handle(
        service,
        Request::LoadModel {
            source: "vit-fashion-mnist".into(),
            names: names.iter().map(|n| n.to_string()).collect(),
        },
        files,
    );
    assert!(matches!(r, Response::ModelLoaded(_)), "{r:?}");
}

fn accuracy(right: usize, n: usize) -> f64 {
    right as f64 / n as f64
}

#[test]
fn a_head_trained_on_dropped_pngs_classifies_held_out_images() {
    let data = FashionMnist::load();
    let dir = tempfile::tempdir().unwrap();
    let written = data.write_class_folders(dir.path());
    let files = read_class_folders(dir.path()).unwrap();
    assert_eq!(files.len(), written + 1, "every PNG and the text file");

    let mut service = Service::new();
    load_vit(&mut service);
    let (classes, names, bytes): (Vec<_>, Vec<_>, Vec<_>) =
        files.into_iter().map(|f| (f.class, f.name, f.bytes)).fold(
            (Vec::new(), Vec::new(), Vec::new()),
            |(mut c, mut n, mut b), (x, y, z)| {
                c.push(x);
                n.push(y);
                b.push(z);
                (c, n, b)
            },
        );
    let config = TrainConfig {
        epochs: 100,
        lr: 0.01,
        ..Default::default()
    };
    let seen = RefCell::new(Vec::<Progress>::new());
    let progress = |p: Progress| seen.borrow_mut().push(p);
    let ctx = Ctx {
        progress: &progress,
        cancelled: &|| false,
        pause: &|| Box::pin(std::future::ready(())),
    };
    let request = Request::TrainImages {
        classes: classes.clone(),
        names: names.clone(),
        config,
    };
    let started = std::time::Instant::now();
    let summary = match pollster::block_on(service.handle(request.clone(), bytes.clone(), &ctx)) {
        Response::Trained(s) => s,
        other => panic!("{other:?}"),
    };
    let secs = started.elapsed().as_secs_f64();

    // The labels are the folder names; the text file is skipped, counted and named.
    let mut sorted: Vec<String> = CLASSES.iter().map(|c| c.to_string()).collect();
    sorted.sort_by_key(|c| c.to_lowercase());
    assert_eq!(summary.labels, sorted);
    assert_eq!(summary.class_counts, vec![TRAIN_PER_CLASS; 10]);
    assert_eq!(summary.skipped_rows, 1);
    assert!(
        summary
            .warnings
            .iter()
            .any(|w| w.contains("notes.txt") && w.contains("not an image")),
        "{:?}",
        summary.warnings
    );
    assert!(!summary.cached_embeddings);
    // Progress: embedding over all 300 images, then one report per epoch.
    let seen = seen.into_inner();
    let embedded = seen.iter().rfind(|p| p.stage == "embedding").unwrap();
    assert_eq!((embedded.done, embedded.total), (300, 300));
    assert_eq!(
        seen.iter().filter(|p| p.epoch.is_some()).count(),
        summary.history.len()
    );

    // Held out: images the head never saw, through the image panel's request.
    let held: Vec<usize> = (HELD_OUT_FROM..HELD_OUT_FROM + HELD_OUT).collect();
    let r = handle(
        &mut service,
        Request::ClassifyImages {
            names: held.iter().map(|i| format!("{i}.png")).collect(),
            attentions: false,
        },
        held.iter().map(|&i| data.png(i)).collect(),
    );
    let results: Vec<ImageResult> = match r {
        Response::ImageResults { results } => results,
        other => panic!("{other:?}"),
    };
    let (mut head_right, mut own_right) = (0, 0);
    for (r, &i) in results.iter().zip(&held) {
        let truth = data.labels[i] as usize;
        let head = r
            .head
            .as_ref()
            .expect("the trained head answers next to the model");
        assert_eq!(head.labels, sorted);
        assert!((head.probs.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        head_right += usize::from(head.label == CLASSES[truth]);
        own_right += usize::from(r.label == r.labels[truth]);
    }
    let head_acc = accuracy(head_right, HELD_OUT);
    let own_acc = accuracy(own_right, HELD_OUT);
    println!(
        "image head on 300 Fashion-MNIST PNGs (10 classes, 30 each; {} epochs, best {}, {secs:.1} s): \
         validation accuracy {:.3} on {} images; held-out accuracy {head_acc:.3} on {HELD_OUT} other \
         images (chance 0.100; the ViT's own classifier, trained on 60,000 images: {own_acc:.3})",
        summary.history.len(),
        summary.best_epoch,
        summary.metrics.accuracy,
        summary.metrics.per_class.iter().map(|c| c.support).sum::<usize>(),
    );
    assert!(
        head_acc >= 0.70,
        "held-out accuracy {head_acc:.3} is too low (chance 0.1)"
    );
    assert!(
        summary.metrics.accuracy >= 0.6,
        "validation accuracy {}",
        summary.metrics.accuracy
    );

    // Training again with other settings reuses the embeddings.
    let again = match handle(
        &mut service,
        Request::TrainImages {
            classes,
            names,
            config: TrainConfig { epochs: 5, ..config },
        },
        bytes,
    ) {
        Response::Trained(s) => s,
        other => panic!("{other:?}"),
    };
    assert!(again.cached_embeddings);
    assert!(again.history.len() <= 5);

    // Exported and imported again, the head gives the same answers.
    let (st, json) = match handle(&mut service, Request::ExportImageHead, Vec::new()) {
        Response::HeadFile { safetensors, json } => (safetensors, json),
        other => panic!("{other:?}"),
    };
    assert!(json.contains("\"pooling\": \"cls\""), "{json}");
    let mut fresh = Service::new();
    load_vit(&mut fresh);
    // The text section's import refuses an image head and says where it goes.
    match handle(
        &mut fresh,
        Request::ImportHead {
            name: "image-head.safetensors".into(),
        },
        vec![st.clone()],
    ) {
        Response::Error { message } => assert!(
            message.starts_with("image-head.safetensors is an image head (")
                && message.contains("import it in the image section"),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
    let r = handle(
        &mut fresh,
        Request::ImportImageHead {
            name: "head.safetensors".into(),
        },
        vec![st],
    );
    assert!(matches!(r, Response::HeadLoaded(_)), "{r:?}");
    let pick = |s: &mut Service| match handle(
        s,
        Request::ClassifyImages {
            names: vec!["a.png".into()],
            attentions: false,
        },
        vec![data.png(HELD_OUT_FROM)],
    ) {
        Response::ImageResults { results } => results[0].head.clone().unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(pick(&mut service), pick(&mut fresh));
}

#[test]
fn cli_trains_on_class_folders_and_classifies_with_the_head() {
    let data = FashionMnist::load();
    let dir = tempfile::tempdir().unwrap();
    let classes = dir.path().join("classes");
    data.write_class_folders(&classes);
    let out = dir.path().join("head.safetensors");
    let model = model_dir();
    let (code, lines, stderr) = common::webformer(&[
        "train",
        "--model",
        model.to_str().unwrap(),
        "--images",
        classes.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "100",
        "--lr",
        "0.01",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("300 images in 10 classes"), "{stderr}");
    let last = lines.last().unwrap();
    assert_eq!(last["done"], true);
    assert_eq!(last["skipped_files"].as_array().unwrap().len(), 1, "{last}");
    assert!(lines.len() >= 2, "one line per epoch, then the metrics");
    let val = last["val_accuracy"].as_f64().unwrap();
    assert!(out.exists() && out.with_extension("json").exists());

    // 100 held-out images through `image --head`.
    let held: Vec<usize> = (HELD_OUT_FROM..HELD_OUT_FROM + 100).collect();
    let paths: Vec<String> = held
        .iter()
        .map(|&i| {
            let p = dir.path().join(format!("held-{i}.png"));
            std::fs::write(&p, data.png(i)).unwrap();
            p.display().to_string()
        })
        .collect();
    let mut args = vec![
        "image",
        "--model",
        model.to_str().unwrap(),
        "--head",
        out.to_str().unwrap(),
    ];
    args.extend(paths.iter().map(String::as_str));
    let (code, lines, stderr) = common::webformer(&args);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines.len(), held.len());
    let right = lines
        .iter()
        .zip(&held)
        .filter(|(l, &i)| l["label"] == CLASSES[data.labels[i] as usize])
        .count();
    let acc = accuracy(right, held.len());
    println!("CLI: validation accuracy {val:.3}; held-out accuracy {acc:.3} on 100 images (chance 0.1)");
    assert!(acc >= 0.70, "held-out accuracy {acc:.3}");

    // A safetensors file that is not a head is refused with a message naming it.
    let weights = model.join("model.safetensors");
    let (code, _, stderr) = common::webformer(&[
        "image",
        "--model",
        model.to_str().unwrap(),
        "--head",
        weights.to_str().unwrap(),
        &paths[0],
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("not a webformer head"), "{stderr}");
}

/// What the page does with folders dropped onto the image-classes area (or picked): each
/// file's class is the folder it is in, whether the drop was class folders or one parent
/// folder of them; loose files go to the typed class, zips to their own folders' classes.
#[test]
fn dropped_folders_become_classes() {
    let paths = |v: &[&str]| v.iter().map(|p| (p.to_string(), ())).collect::<Vec<_>>();
    let names = |p: Placed<()>| {
        let classes: Vec<(String, Vec<String>)> = p
            .classes
            .into_iter()
            .map(|(c, f)| (c, f.into_iter().map(|(path, ())| path).collect()))
            .collect();
        (classes, p.unplaced)
    };
    let own = |s: &str| s.to_string();
    // Two class folders dropped together (a class name typed on the page does not matter).
    let p = place_files(
        paths(&["shoes/a.png", "shoes/b.png", "bags/c.png", "shoes/.DS_Store"]),
        "ignored",
    );
    assert_eq!(
        names(p),
        (
            vec![
                (own("shoes"), vec![own("shoes/a.png"), own("shoes/b.png")]),
                (own("bags"), vec![own("bags/c.png")]),
            ],
            vec![]
        )
    );
    // One parent folder of class folders (a drop, or a folder pick's webkitRelativePath),
    // with a macOS zip's droppings.
    let p = place_files(
        paths(&[
            "photos/shoes/a.png",
            "photos/bags/c.png",
            "photos/shoes/b.png",
            "__MACOSX/photos/shoes/._a.png",
        ]),
        "",
    );
    assert_eq!(
        names(p),
        (
            vec![
                (
                    own("shoes"),
                    vec![own("photos/shoes/a.png"), own("photos/shoes/b.png")]
                ),
                (own("bags"), vec![own("photos/bags/c.png")]),
            ],
            vec![]
        )
    );
    // Loose files: the typed class; without one a zip keeps its folders and the rest is
    // named, not lost silently.
    let p = place_files(paths(&["x.png", "y.PNG"]), " sneakers ");
    assert_eq!(
        names(p),
        (vec![(own("sneakers"), vec![own("x.png"), own("y.PNG")])], vec![])
    );
    let p = place_files(paths(&["classes.ZIP", "x.png", "shoes\\a.png"]), "");
    assert_eq!(
        names(p),
        (
            vec![
                (own(""), vec![own("classes.ZIP")]),
                (own("shoes"), vec![own("shoes/a.png")]),
            ],
            vec![own("x.png")]
        )
    );
}
