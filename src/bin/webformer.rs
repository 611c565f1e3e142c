//! The native CLI. Its commands and JSON lines are a contract scripts rely on:
//! one JSON object per input, one per line, on stdout; errors on stderr, non-zero exit.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{json, Map, Value};
use webformer::engine::backend::cpu::CpuBackend;
#[cfg(feature = "webgpu")]
use webformer::engine::backend::webgpu::WgpuBackend;
use webformer::engine::backend::{Backend, TrainOps};
use webformer::engine::dataset::CsvTable;
use webformer::engine::encoder::Want;
use webformer::engine::finetune::{
    block_on_ready, classify_embeddings, head_from_safetensors, head_to_safetensors, train_head, HeadMeta,
    TrainConfig,
};
use webformer::engine::image::preprocess_bytes;
use webformer::engine::image_dataset::{read_class_folders, ImageDataset};
use webformer::engine::model::softmax;
use webformer::engine::model::Prediction;
use webformer::engine::pipeline::Pipeline;
use webformer::engine::tokenize::TextTokenizer;
use webformer::engine::train::Head;

#[derive(Parser)]
#[command(
    name = "webformer",
    version,
    about = "Transformer models that run, explain themselves and learn"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendArg {
    Cpu,
    Webgpu,
}

#[derive(clap::Args)]
struct ModelArgs {
    /// A Hugging Face checkpoint folder (config.json, model.safetensors, tokenizer.json, …).
    #[arg(long)]
    model: PathBuf,
    #[arg(long, value_enum, default_value = "cpu")]
    backend: BackendArg,
    /// Also print `attentions` [layer][head][query][key] over the input's own tokens.
    #[arg(long)]
    attentions: bool,
}

#[derive(clap::Args)]
struct TrainArgs {
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    epochs: usize,
    /// Add a ReLU hidden layer of this width (default: a linear head).
    #[arg(long)]
    hidden: Option<usize>,
    #[arg(long, default_value_t = TrainConfig::default().lr)]
    lr: f64,
    #[arg(long, default_value_t = TrainConfig::default().weight_decay)]
    weight_decay: f64,
    #[arg(long, default_value_t = TrainConfig::default().batch_size)]
    batch_size: usize,
    #[arg(long, default_value_t = TrainConfig::default().patience)]
    patience: usize,
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    seed: u64,
}

impl TrainArgs {
    fn config(&self) -> TrainConfig {
        TrainConfig {
            hidden: self.hidden,
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            weight_decay: self.weight_decay,
            patience: self.patience,
            seed: self.seed,
            ..TrainConfig::default()
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Classify each TEXT: `token_ids`, `logits`, `probs`, `label`.
    Text {
        #[command(flatten)]
        model: ModelArgs,
        /// A head trained by `webformer train`: classify with it (on any encoder of its width)
        /// instead of the model's own classifier.
        #[arg(long)]
        head: Option<PathBuf>,
        #[arg(required = true)]
        text: Vec<String>,
    },
    /// Train a classification head on the encoder's (frozen) mean-pooled embeddings of a CSV's
    /// texts, or on a ViT's `[CLS]` embeddings of images in class folders (`--images`).
    /// Prints one JSON line per epoch and a final metrics line; writes OUT and OUT's
    /// `.json` twin (labels, encoder, pooling, metrics).
    Train {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long, required_unless_present = "images", conflicts_with = "images")]
        csv: Option<PathBuf>,
        /// A folder holding one folder of images per class (the folder names are the labels).
        #[arg(long)]
        images: Option<PathBuf>,
        /// The text column's name (default: guessed: text, sentence, review, …).
        #[arg(long)]
        text_col: Option<String>,
        /// The label column's name (default: guessed: label, class, sentiment, …).
        #[arg(long)]
        label_col: Option<String>,
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        train: TrainArgs,
    },
    /// Classify each image file: `logits`, `probs`, `label`.
    Image {
        #[command(flatten)]
        model: ModelArgs,
        /// An image head trained by `webformer train --images`: classify with it (on any ViT
        /// of its width) instead of the model's own classifier.
        #[arg(long)]
        head: Option<PathBuf>,
        #[arg(required = true)]
        path: Vec<PathBuf>,
    },
    /// Embed each TEXT: `token_ids`, `embedding` (mean of the last hidden states, not normalised).
    Embed {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(required = true)]
        text: Vec<String>,
    },
    /// Print the tokens of each TEXT: `token_ids`, `tokens`.
    Tokenize {
        /// A tokenizer.json file.
        #[arg(long)]
        tokenizer: PathBuf,
        /// Truncate to this many tokens (the model's maximum).
        #[arg(long)]
        max_len: Option<usize>,
        #[arg(required = true)]
        text: Vec<String>,
    },
}

/// Runs `command` on the backend its `--backend` names.
fn dispatch(backend: BackendArg, command: Command) -> Result<(), String> {
    match backend {
        BackendArg::Cpu => run_on(&CpuBackend::new(), command),
        #[cfg(feature = "webgpu")]
        BackendArg::Webgpu => {
            let gpu = WgpuBackend::new().map_err(|e| format!("{e}; use --backend cpu"))?;
            eprintln!("webformer: using {}", gpu.name());
            run_on(&gpu, command)
        }
        #[cfg(not(feature = "webgpu"))]
        BackendArg::Webgpu => {
            Err("this build has no WebGPU backend (build with --features webgpu); use --backend cpu".into())
        }
    }
}

fn load<B: Backend>(be: &B, args: &ModelArgs) -> Result<Pipeline<B>, String> {
    Pipeline::from_dir(be, &args.model).map_err(|e| e.to_string())
}

fn want(args: &ModelArgs) -> Want {
    Want {
        attentions: args.attentions,
        hidden_states: false,
    }
}

/// The contract's fields of one prediction.
fn fields(p: Prediction, classify: bool, embed: bool) -> Map<String, Value> {
    let mut m = Map::new();
    if classify {
        m.insert("logits".into(), json!(p.logits));
        m.insert("probs".into(), json!(p.probs));
        m.insert("label".into(), json!(p.label));
    }
    if embed {
        m.insert("embedding".into(), json!(p.embedding));
    }
    if let Some(a) = p.attentions {
        m.insert("attentions".into(), json!(a));
    }
    m
}

/// One line per text: `token_ids`, then the classifier's or the embedding's fields.
fn print_texts<B: Backend>(
    be: &B,
    p: &Pipeline<B>,
    args: &ModelArgs,
    texts: &[String],
    classify: bool,
) -> Result<(), String> {
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    for t in p.run_texts(be, &texts, want(args)).map_err(|e| e.to_string())? {
        let mut m = Map::new();
        m.insert("token_ids".into(), json!(t.token_ids));
        m.extend(fields(t.prediction, classify, !classify));
        print(m);
    }
    Ok(())
}

fn print(m: Map<String, Value>) {
    println!("{}", Value::Object(m));
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Text { ref model, .. }
        | Command::Embed { ref model, .. }
        | Command::Image { ref model, .. } => dispatch(model.backend, cli.command),
        command => run_on(&CpuBackend::new(), command),
    }
}

fn run_on<B: TrainOps>(be: &B, command: Command) -> Result<(), String> {
    match command {
        Command::Text {
            model,
            head: Some(head),
            text,
        } => {
            let p = load(be, &model)?;
            classify_with_head(be, &p, &model, &head, &text)
        }
        Command::Train {
            model,
            images: Some(dir),
            out,
            train,
            ..
        } => {
            let p = load(be, &model)?;
            train_images_cmd(be, &p, &model, &dir, &out, &train.config())
        }
        Command::Train {
            model,
            csv: Some(csv),
            text_col,
            label_col,
            out,
            train,
            images: None,
        } => {
            let p = load(be, &model)?;
            train_cmd(be, &p, &model, &csv, text_col, label_col, &out, &train.config())
        }
        Command::Train { .. } => Err("give --csv FILE or --images DIR".into()),
        Command::Text { model, text, .. } => {
            let p = load(be, &model)?;
            if !p.model.config.architecture.has_classifier() {
                return Err(format!(
                    "{} has no classifier (an encoder); use `webformer embed`",
                    model.model.display()
                ));
            }
            print_texts(be, &p, &model, &text, true)
        }
        Command::Embed { model, text } => {
            let p = load(be, &model)?;
            print_texts(be, &p, &model, &text, false)
        }
        Command::Image {
            model,
            head: Some(head),
            path,
        } => {
            let p = load(be, &model)?;
            classify_images_with_head(be, &p, &model, &head, &path)
        }
        Command::Image { model, path, .. } => {
            let p = load(be, &model)?;
            if !p.model.config.architecture.has_classifier() {
                return Err(format!(
                    "{} has no classifier (an encoder)",
                    model.model.display()
                ));
            }
            let images = path
                .iter()
                .map(|f| read(f).map(|b| (f.display().to_string(), b)))
                .collect::<Result<Vec<_>, _>>()?;
            for pred in p
                .run_images(be, &images, want(&model))
                .map_err(|e| e.to_string())?
            {
                print(fields(pred, true, false));
            }
            Ok(())
        }
        Command::Tokenize {
            tokenizer,
            max_len,
            text,
        } => {
            let tok = TextTokenizer::from_file(&tokenizer, max_len).map_err(|e| e.to_string())?;
            for t in text {
                let tokens = tok.encode(&t).map_err(|e| e.to_string())?;
                let line = json!({
                    "token_ids": tokens.iter().map(|t| t.id).collect::<Vec<_>>(),
                    "tokens": tokens.iter().map(|t| t.text.as_str()).collect::<Vec<_>>(),
                });
                println!("{line}");
            }
            Ok(())
        }
    }
}

/// Mean-pooled embeddings of `texts`, in batches, with progress on stderr.
fn embed_all<B: Backend>(be: &B, p: &Pipeline<B>, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
    let want = Want::default();
    let mut out = Vec::with_capacity(texts.len());
    let start = std::time::Instant::now();
    for chunk in texts.chunks(256) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let preds = p.run_texts(be, &refs, want).map_err(|e| e.to_string())?;
        out.extend(preds.into_iter().map(|t| t.prediction.embedding));
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "webformer: embedded {}/{} texts ({:.0} texts/s)",
            out.len(),
            texts.len(),
            out.len() as f64 / secs.max(1e-9)
        );
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn train_cmd<B: TrainOps>(
    be: &B,
    p: &Pipeline<B>,
    args: &ModelArgs,
    csv: &Path,
    text_col: Option<String>,
    label_col: Option<String>,
    out: &Path,
    config: &TrainConfig,
) -> Result<(), String> {
    let name = csv.display().to_string();
    let table = CsvTable::parse(&name, &read(csv)?).map_err(|e| e.to_string())?;
    let (guess_text, guess_label) = table.guess_columns();
    let pick = |given: Option<String>, guess: Option<usize>, what: &str| -> Result<usize, String> {
        match given {
            Some(c) => table.column(&c).map_err(|e| e.to_string()),
            None => guess.ok_or_else(|| {
                format!(
                    "{name}: could not tell which column holds the {what}; name it with --{what}-col (columns: {})",
                    table.headers.join(", ")
                )
            }),
        }
    };
    let (t, l) = (
        pick(text_col, guess_text, "text")?,
        pick(label_col, guess_label, "label")?,
    );
    let data = table.dataset(t, l).map_err(|e| e.to_string())?;
    for w in &data.warnings {
        eprintln!("webformer: {w}");
    }
    eprintln!(
        "webformer: {} texts from column {:?}, labels from {:?}: {}",
        data.texts.len(),
        table.headers[t],
        table.headers[l],
        data.label_names
            .iter()
            .zip(data.class_counts())
            .map(|(n, c)| format!("{n} ({c})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let embeddings = embed_all(be, p, &data.texts)?;
    let skipped = json!(data.skipped_empty + data.skipped_ragged);
    let set = TrainingSet {
        embeddings: &embeddings,
        labels: &data.labels,
        label_names: &data.label_names,
        pooling: "mean",
    };
    train_and_write(be, args, set, config, out, ("skipped_rows", skipped))
}

/// What `train_and_write` trains on.
struct TrainingSet<'a> {
    embeddings: &'a [Vec<f32>],
    labels: &'a [u32],
    label_names: &'a [String],
    /// How the embeddings were made ("mean" for text, "cls" for images), for the head's JSON.
    pooling: &'a str,
}

/// The tail shared by `train --csv` and `train --images`: trains the head (one JSON line
/// per epoch), writes `out` and its `.json` next to it, and prints the final metrics line
/// with `extra` (what the input skipped).
fn train_and_write<B: TrainOps>(
    be: &B,
    args: &ModelArgs,
    data: TrainingSet,
    config: &TrainConfig,
    out: &Path,
    extra: (&str, Value),
) -> Result<(), String> {
    let trained = block_on_ready(train_head(
        be,
        data.embeddings,
        data.labels,
        data.label_names,
        config,
        |r| {
            println!("{}", serde_json::to_string(r).unwrap_or_default());
            true
        },
    ))
    .map_err(|e| e.to_string())?;
    let meta = HeadMeta {
        labels: data.label_names.to_vec(),
        encoder: args.model.display().to_string(),
        input: data.embeddings[0].len(),
        hidden: config.hidden,
        pooling: data.pooling.into(),
        metrics: Some(trained.metrics.clone()),
        config: Some(*config),
    };
    let weights = trained.head.to_host(be).map_err(|e| e.to_string())?;
    let bytes = head_to_safetensors(&weights, &meta).map_err(|e| e.to_string())?;
    std::fs::write(out, bytes).map_err(|e| format!("{}: {e}", out.display()))?;
    let json_path = out.with_extension("json");
    let json = serde_json::to_string_pretty(&meta).map_err(|e| e.to_string())?;
    std::fs::write(&json_path, json).map_err(|e| format!("{}: {e}", json_path.display()))?;
    let m = &trained.metrics;
    let mut line = json!({
        "done": true,
        "epochs": trained.history.len(),
        "best_epoch": trained.best_epoch,
        "stopped_early": trained.stopped_early,
        "labels": data.label_names,
        "val_accuracy": m.accuracy,
        "macro_f1": m.macro_f1,
        "confusion": m.confusion,
        "per_class": m.per_class,
        "out": out.display().to_string(),
    })
    .as_object()
    .cloned()
    .unwrap_or_default();
    line.insert(extra.0.to_string(), extra.1);
    print(line);
    Ok(())
}

/// `text --head`: the encoder's embeddings through a trained head.
fn classify_with_head<B: Backend>(
    be: &B,
    p: &Pipeline<B>,
    args: &ModelArgs,
    head_path: &Path,
    texts: &[String],
) -> Result<(), String> {
    let (weights, meta) = head_from_safetensors(&head_path.display().to_string(), &read(head_path)?)
        .map_err(|e| e.to_string())?;
    if meta.pooling != "mean" {
        return Err(format!(
            "{}: pooling {:?} is not supported",
            head_path.display(),
            meta.pooling
        ));
    }
    let width = p.model.config.hidden_size();
    if width != meta.input {
        return Err(format!(
            "{}: the head takes {}-wide embeddings (trained on {}), but {} gives {width}",
            head_path.display(),
            meta.input,
            meta.encoder,
            args.model.display()
        ));
    }
    let head = Head::from_host(be, meta.head_config(), &weights).map_err(|e| e.to_string())?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let preds = p.run_texts(be, &refs, want(args)).map_err(|e| e.to_string())?;
    let embeddings: Vec<Vec<f32>> = preds.iter().map(|t| t.prediction.embedding.clone()).collect();
    let logits = classify_embeddings(be, &head, &embeddings).map_err(|e| e.to_string())?;
    for (t, l) in preds.into_iter().zip(logits) {
        let probs = softmax(&l);
        let best = probs
            .iter()
            .enumerate()
            .fold(0, |b, (j, &v)| if v > probs[b] { j } else { b });
        let mut m = Map::new();
        m.insert("token_ids".into(), json!(t.token_ids));
        m.insert("logits".into(), json!(l));
        m.insert("probs".into(), json!(probs));
        m.insert("label".into(), json!(meta.labels[best]));
        if let Some(a) = t.prediction.attentions {
            m.insert("attentions".into(), json!(a));
        }
        print(m);
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("webformer: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `train --images`: a head on the ViT's `[CLS]` embeddings of images in class folders.
fn train_images_cmd<B: TrainOps>(
    be: &B,
    p: &Pipeline<B>,
    args: &ModelArgs,
    dir: &Path,
    out: &Path,
    config: &TrainConfig,
) -> Result<(), String> {
    let files = read_class_folders(dir).map_err(|e| e.to_string())?;
    let mut data = ImageDataset::new(files).map_err(|e| e.to_string())?;
    eprintln!(
        "webformer: {} images in {} classes: {}",
        data.images.len(),
        data.label_names.len(),
        data.label_names
            .iter()
            .zip(data.class_counts())
            .map(|(n, c)| format!("{n} ({c})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let embedded = embed_images(be, p, &data.images)?;
    let failed: Vec<(usize, String)> = embedded
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.as_ref().err().map(|why| (i, why.clone())))
        .collect();
    let embeddings: Vec<Vec<f32>> = embedded.into_iter().filter_map(Result::ok).collect();
    data.drop_failed(&failed).map_err(|e| e.to_string())?;
    for w in data.warnings() {
        eprintln!("webformer: {w}");
    }
    let skipped = json!(data.skipped);
    let set = TrainingSet {
        embeddings: &embeddings,
        labels: &data.labels,
        label_names: &data.label_names,
        pooling: "cls",
    };
    train_and_write(be, args, set, config, out, ("skipped_files", skipped))
}

/// Each image's `[CLS]` embedding (what a ViT's classifier reads), or why the file could not
/// be read; progress on stderr.
fn embed_images<B: Backend>(
    be: &B,
    p: &Pipeline<B>,
    images: &[(String, Vec<u8>)],
) -> Result<Vec<Result<Vec<f32>, String>>, String> {
    let pre = p
        .preprocessor
        .as_ref()
        .ok_or("this model takes text; train on images with an image model (a ViT)")?;
    let mut out = Vec::with_capacity(images.len());
    let start = std::time::Instant::now();
    for chunk in images.chunks(64) {
        let mut pixels = Vec::new();
        let mut slots = Vec::new();
        for (name, bytes) in chunk {
            match preprocess_bytes(name, bytes, pre) {
                Ok(px) => {
                    slots.push(Ok(()));
                    pixels.push(px);
                }
                Err(e) => slots.push(Err(e.to_string())),
            }
        }
        let preds = p
            .model
            .run_images(be, &pixels, Want::default())
            .map_err(|e| e.to_string())?;
        let mut preds = preds.into_iter();
        out.extend(
            slots
                .into_iter()
                .map(|s| s.map(|()| preds.next().map(|pr| pr.cls).unwrap_or_default())),
        );
        eprintln!(
            "webformer: embedded {}/{} images ({:.0} images/s)",
            out.len(),
            images.len(),
            out.len() as f64 / start.elapsed().as_secs_f64().max(1e-9)
        );
    }
    Ok(out)
}

/// `image --head`: the ViT's `[CLS]` embeddings through a trained image head.
fn classify_images_with_head<B: Backend>(
    be: &B,
    p: &Pipeline<B>,
    args: &ModelArgs,
    head_path: &Path,
    paths: &[PathBuf],
) -> Result<(), String> {
    let (weights, meta) = head_from_safetensors(&head_path.display().to_string(), &read(head_path)?)
        .map_err(|e| e.to_string())?;
    if meta.pooling != "cls" {
        return Err(format!(
            "{}: this head was trained on {} pooled text embeddings; use it with `webformer text --head`",
            head_path.display(),
            meta.pooling
        ));
    }
    let width = p.model.config.hidden_size();
    if width != meta.input {
        return Err(format!(
            "{}: the head takes {}-wide embeddings (trained on {}), but {} gives {width}",
            head_path.display(),
            meta.input,
            meta.encoder,
            args.model.display()
        ));
    }
    let head = Head::from_host(be, meta.head_config(), &weights).map_err(|e| e.to_string())?;
    let images = paths
        .iter()
        .map(|f| read(f).map(|b| (f.display().to_string(), b)))
        .collect::<Result<Vec<_>, _>>()?;
    let preds = p.run_images(be, &images, want(args)).map_err(|e| e.to_string())?;
    let embeddings: Vec<Vec<f32>> = preds.iter().map(|pr| pr.cls.clone()).collect();
    let logits = classify_embeddings(be, &head, &embeddings).map_err(|e| e.to_string())?;
    for (pr, l) in preds.into_iter().zip(logits) {
        let probs = softmax(&l);
        let best = probs
            .iter()
            .enumerate()
            .fold(0, |b, (j, &v)| if v > probs[b] { j } else { b });
        let mut m = Map::new();
        m.insert("logits".into(), json!(l));
        m.insert("probs".into(), json!(probs));
        m.insert("label".into(), json!(meta.labels[best]));
        if let Some(a) = pr.attentions {
            m.insert("attentions".into(), json!(a));
        }
        print(m);
    }
    Ok(())
}
