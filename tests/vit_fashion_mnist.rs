//! A real, trained ViT: our engine against PyTorch on all 10,000 Fashion-MNIST test
//! images. The checkpoint and its goldens come from
//! tests/fixtures/train_vit_fashion_mnist.py (see its docstring); the images are read
//! from Debian's `dataset-fashion-mnist` package, which `scripts/setup.sh` installs.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use serde::Deserialize;
use webformer::engine::backend::cpu::CpuBackend;
use webformer::engine::encoder::Want;
use webformer::engine::pipeline::Pipeline;

const DATA: &str = "/usr/share/datasets/fashion-mnist";
const LABELS: [&str; 10] = [
    "T-shirt/top",
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
const BATCH: usize = 64;
const TOL: f32 = 1e-4;

#[derive(Deserialize)]
struct TestGoldens {
    accuracy: f64,
    predictions: Vec<usize>,
    logits_first_100: Vec<Vec<f32>>,
}

#[derive(Deserialize)]
struct SampleGoldens {
    samples: Vec<Sample>,
}

#[derive(Deserialize)]
struct Sample {
    file: String,
    predicted_label: String,
    logits: Vec<f32>,
}

fn model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vit-fashion-mnist")
}

fn golden<T: for<'de> Deserialize<'de>>(name: &str) -> T {
    let path = model_dir().join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An idx file's dimensions and its uint8 payload.
fn read_idx(name: &str) -> (Vec<usize>, Vec<u8>) {
    let dir = Path::new(DATA);
    assert!(
        dir.is_dir(),
        "{DATA} is missing: this test needs the Fashion-MNIST test set from Debian's \
         `dataset-fashion-mnist` package; run scripts/setup.sh to install it"
    );
    let path = dir.join(name);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run scripts/setup.sh to install dataset-fashion-mnist)",
            path.display()
        )
    });
    let mut data = Vec::new();
    GzDecoder::new(file)
        .read_to_end(&mut data)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let be_u32 = |at: usize| u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
    let magic = be_u32(0);
    // 0x08 = unsigned byte; the last byte is the number of dimensions.
    assert_eq!(
        magic >> 8,
        0x08,
        "{name}: not a uint8 idx file (magic {magic:#x})"
    );
    let ndim = magic & 0xff;
    let dims: Vec<usize> = (0..ndim).map(|d| be_u32(4 + 4 * d)).collect();
    let payload = data[4 + 4 * ndim..].to_vec();
    assert_eq!(payload.len(), dims.iter().product::<usize>(), "{name}: truncated");
    (dims, payload)
}

/// A 28×28 grey image as `ViTImageProcessor` gives it for the RGB conversion: the grey
/// value in all three channels, rescaled (float64 multiply, cast to float32) and
/// normalized ((x - 0.5) / 0.5 in float32); CHW.
fn pixels(grey: &[u8]) -> Vec<f32> {
    let one: Vec<f32> = grey
        .iter()
        .map(|&v| ((f64::from(v) * (1.0 / 255.0)) as f32 - 0.5f32) / 0.5f32)
        .collect();
    one.repeat(3)
}

fn argmax(v: &[f32]) -> usize {
    // The first maximum, as torch.argmax.
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

#[test]
fn all_10000_test_images_match_pytorch() {
    let (img_dims, img) = read_idx("t10k-images-idx3-ubyte.gz");
    let (lbl_dims, labels) = read_idx("t10k-labels-idx1-ubyte.gz");
    assert_eq!(img_dims, [10_000, 28, 28]);
    assert_eq!(lbl_dims, [10_000]);
    let gold: TestGoldens = golden("golden_test_predictions.json");
    assert_eq!(gold.predictions.len(), 10_000);

    let be = CpuBackend::new();
    let p = Pipeline::from_dir(&be, &model_dir()).unwrap();
    let images: Vec<Vec<f32>> = img.chunks(28 * 28).map(pixels).collect();

    let mut logits: Vec<Vec<f32>> = Vec::with_capacity(images.len());
    for chunk in images.chunks(BATCH) {
        for pred in p.model.run_images(&be, chunk, Want::default()).unwrap() {
            let l = pred.logits.expect("a classifier gives logits");
            assert_eq!(l.len(), 10);
            let label = pred.label.expect("a classifier gives a label");
            assert_eq!(label, LABELS[argmax(&l)], "label is id2label[argmax]");
            logits.push(l);
        }
    }
    assert_eq!(logits.len(), 10_000);

    // Predictions: every one equals PyTorch's.
    let ours: Vec<usize> = logits.iter().map(|l| argmax(l)).collect();
    let differing: Vec<String> = (0..ours.len())
        .filter(|&i| ours[i] != gold.predictions[i])
        .map(|i| {
            let (a, b) = (ours[i], gold.predictions[i]);
            format!(
                "image {i}: ours {a} ({}), PyTorch {b} ({}), our logit margin {:.3e}",
                LABELS[a],
                LABELS[b],
                logits[i][a] - logits[i][b]
            )
        })
        .collect();

    // Accuracy: the same count of correct answers.
    let correct = |preds: &[usize]| {
        preds
            .iter()
            .zip(&labels)
            .filter(|(p, &l)| **p == l as usize)
            .count()
    };
    let (ours_correct, torch_correct) = (correct(&ours), correct(&gold.predictions));
    let accuracy = ours_correct as f64 / 10_000.0;

    // Logits of the first 100 images.
    let mut max_diff = 0f32;
    for (i, (a, b)) in logits.iter().zip(&gold.logits_first_100).enumerate() {
        assert_eq!(b.len(), 10, "golden logits of image {i}");
        for (x, y) in a.iter().zip(b) {
            max_diff = max_diff.max((x - y).abs());
        }
    }
    println!(
        "Fashion-MNIST test set: our accuracy {accuracy:.4}, PyTorch's {:.4}; {} of 10000 \
         predictions differ; max |logit diff| on the first 100 images {max_diff:.3e}",
        gold.accuracy,
        differing.len()
    );

    assert!(
        differing.is_empty(),
        "{} of 10000 predictions differ from PyTorch's:\n{}",
        differing.len(),
        differing.iter().take(50).cloned().collect::<Vec<_>>().join("\n")
    );
    assert_eq!(
        torch_correct as f64 / 10_000.0,
        gold.accuracy,
        "golden accuracy agrees with golden predictions"
    );
    assert_eq!(accuracy, gold.accuracy, "accuracy");
    assert!(
        max_diff <= TOL,
        "first-100 logits differ by {max_diff:e} > {TOL:e}"
    );
}

#[test]
fn sample_pngs_match_pytorch_through_the_image_path() {
    let gold: SampleGoldens = golden("golden_samples.json");
    assert_eq!(gold.samples.len(), 3);
    let be = CpuBackend::new();
    let p = Pipeline::from_dir(&be, &model_dir()).unwrap();
    for s in &gold.samples {
        let bytes = std::fs::read(model_dir().join(&s.file)).unwrap();
        let preds = p
            .run_images(&be, &[(s.file.clone(), bytes)], Want::default())
            .unwrap();
        assert_eq!(preds.len(), 1);
        let logits = preds[0].logits.as_ref().expect("logits");
        assert_eq!(logits.len(), s.logits.len(), "{}", s.file);
        let max_diff = logits
            .iter()
            .zip(&s.logits)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            max_diff <= TOL,
            "{}: logits differ by {max_diff:e} > {TOL:e}\nours  {logits:?}\ntorch {:?}",
            s.file,
            s.logits
        );
        assert_eq!(
            preds[0].label.as_deref(),
            Some(s.predicted_label.as_str()),
            "{}",
            s.file
        );
        println!(
            "{}: {}, max |logit diff| {max_diff:.3e}",
            s.file, s.predicted_label
        );
    }
}
