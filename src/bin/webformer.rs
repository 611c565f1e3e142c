//! The native CLI. Its commands and JSON lines are a contract scripts rely on:
//! one JSON object per input, one per line, on stdout; errors on stderr, non-zero exit.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{json, Map, Value};
use webformer::engine::backend::cpu::CpuBackend;
#[cfg(feature = "webgpu")]
use webformer::engine::backend::webgpu::WgpuBackend;
use webformer::engine::backend::Backend;
use webformer::engine::encoder::Want;
use webformer::engine::model::Prediction;
use webformer::engine::pipeline::Pipeline;
use webformer::engine::tokenize::TextTokenizer;

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

#[derive(Subcommand)]
enum Command {
    /// Classify each TEXT: `token_ids`, `logits`, `probs`, `label`.
    Text {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(required = true)]
        text: Vec<String>,
    },
    /// Classify each image file: `logits`, `probs`, `label`.
    Image {
        #[command(flatten)]
        model: ModelArgs,
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

fn run_on<B: Backend>(be: &B, command: Command) -> Result<(), String> {
    match command {
        Command::Text { model, text } => {
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
        Command::Image { model, path } => {
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
