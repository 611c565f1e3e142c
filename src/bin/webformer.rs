//! The native CLI. Its commands and JSON lines are a contract scripts rely on.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
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

#[derive(Subcommand)]
enum Command {
    /// Print the tokens of each TEXT as one JSON line (`token_ids`, `tokens`).
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

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Tokenize {
            tokenizer,
            max_len,
            text,
        } => {
            let tok = TextTokenizer::from_file(&tokenizer, max_len).map_err(|e| e.to_string())?;
            for t in text {
                let tokens = tok.encode(&t).map_err(|e| e.to_string())?;
                let line = serde_json::json!({
                    "token_ids": tokens.iter().map(|t| t.id).collect::<Vec<_>>(),
                    "tokens": tokens.iter().map(|t| t.text.as_str()).collect::<Vec<_>>(),
                });
                println!("{line}");
            }
            Ok(())
        }
    }
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
