//! Real learning on real text: a head trained by `webformer train` on the real
//! all-MiniLM-L6-v2 embeddings of the Pang & Lee sentence-polarity corpus, scored on held-out
//! sentences against scikit-learn's logistic regression on the same embeddings and split
//! (`tests/fixtures/pang-lee-baseline.json`, from `make_pang_lee_baseline.py`). The bar: within
//! 2 points of it, or above.
//!
//! The corpus is for personal use only, so it is never committed: `scripts/get-pang-lee.sh`
//! (run by set-up) extracts it from Debian's python3-pattern into `.cache/data/pang-lee/`.

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use webformer::engine::dataset::CsvTable;

fn data(file: &str) -> std::path::PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".cache/data/pang-lee")
        .join(file);
    assert!(
        p.exists(),
        "{} is missing: run scripts/get-pang-lee.sh (set-up does)",
        p.display()
    );
    p
}

fn minilm() -> std::path::PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
    assert!(
        p.join("model.safetensors").exists(),
        "{} is missing: run scripts/setup.sh",
        p.display()
    );
    p
}

fn run(args: &[&str]) -> (Vec<Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_webformer"))
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        out.status.success(),
        "webformer {:?} failed: {stderr}",
        &args[..1]
    );
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (lines, stderr)
}

#[test]
fn head_on_minilm_is_within_two_points_of_logistic_regression() {
    let baseline: Value =
        serde_json::from_str(&std::fs::read_to_string("tests/fixtures/pang-lee-baseline.json").unwrap())
            .unwrap();
    let bar = baseline["test_accuracy"].as_f64().unwrap();
    let (train, test, model) = (data("train.csv"), data("test.csv"), minilm());
    let dir = tempfile::tempdir().unwrap();
    let head = dir.path().join("head.safetensors");
    let (lines, _) = run(&[
        "train",
        "--model",
        model.to_str().unwrap(),
        "--csv",
        train.to_str().unwrap(),
        "--out",
        head.to_str().unwrap(),
    ]);
    let done = lines.last().unwrap();
    assert_eq!(done["labels"], serde_json::json!(["negative", "positive"]));

    let table = CsvTable::parse("test.csv", &std::fs::read(&test).unwrap()).unwrap();
    let (t, l) = (table.column("text").unwrap(), table.column("label").unwrap());
    let texts: Vec<&str> = table.rows.iter().map(|r| r.cells[t].as_str()).collect();
    let truth: Vec<&str> = table.rows.iter().map(|r| r.cells[l].as_str()).collect();
    assert_eq!(texts.len(), baseline["n_test"].as_u64().unwrap() as usize);
    let mut args = vec![
        "text",
        "--model",
        model.to_str().unwrap(),
        "--head",
        head.to_str().unwrap(),
    ];
    args.extend(&texts);
    let (preds, _) = run(&args);
    let right = preds
        .iter()
        .zip(&truth)
        .filter(|(p, t)| p["label"] == **t)
        .count();
    let accuracy = right as f64 / truth.len() as f64;
    eprintln!(
        "Pang & Lee held-out accuracy: ours {:.2}% ({right}/{}), logistic regression {:.2}% \
         (tuned C: {:.2}%); our validation accuracy {:.2}% after {} epochs (best {})",
        accuracy * 100.0,
        truth.len(),
        bar * 100.0,
        baseline["tuned"]["test_accuracy"].as_f64().unwrap_or(f64::NAN) * 100.0,
        done["val_accuracy"].as_f64().unwrap() * 100.0,
        done["epochs"],
        done["best_epoch"],
    );
    assert!(
        accuracy >= bar - 0.02,
        "{accuracy} is more than 2 points below the baseline {bar}"
    );
}
