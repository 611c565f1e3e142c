//! Encoder benchmark: our CPU engine's whole forward pass (`Model::run_text` /
//! `Model::run_images`, the code the app and the CLI run, without attentions) on
//! random-weight models of the real shapes: BERT-base, MiniLM (all-MiniLM-L6-v2's shape)
//! and ViT-base/16 at 224 px.
//!
//! The models are written as `config.json` + `model.safetensors` (Hugging Face names, no
//! prefix: `BertModel` / `ViTModel`) and loaded through the engine's normal path
//! (`ModelConfig::from_json`, `Checkpoint::from_dir`, `Model::load`), so
//! `bench/pytorch_encoder.py` can load the very same files with `from_pretrained`.
//!
//!     cargo bench --bench encoder                       # temp dir, every config, one table
//!     cargo bench --bench encoder -- --models DIR MiniLM  # reuse/write models in DIR, filter
//!     cargo bench --bench encoder -- --write-models DIR   # only write the models
//!     cargo bench --bench encoder -- --serve --models DIR # one config per stdin line
//!     cargo bench --bench encoder -- --memory BERT-base   # heap: load and forward peaks
//!
//! `bench/native.sh` runs this and PyTorch side by side; see bench/README.md. Threads are
//! candle's: `RAYON_NUM_THREADS` (default: the physical cores).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use safetensors::tensor::TensorView;
use safetensors::Dtype;
use serde_json::json;
use webformer::engine::backend::cpu::CpuBackend;
use webformer::engine::checkpoint::Checkpoint;
use webformer::engine::config::ModelConfig;
use webformer::engine::encoder::Want;
use webformer::engine::model::Model;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Counts live heap bytes and their high-water mark, for `--memory`. Everything the engine
/// holds (weights, activations, candle's buffers) is on the Rust heap, which in the browser
/// is the wasm linear memory, so this is the figure that decides whether a model fits.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            if new >= l.size() {
                let now = LIVE.fetch_add(new - l.size(), Ordering::Relaxed) + new - l.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(l.size() - new, Ordering::Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Starts a new high-water mark at the current live bytes.
fn reset_peak() -> usize {
    let live = LIVE.load(Ordering::Relaxed);
    PEAK.store(live, Ordering::Relaxed);
    live
}

const USAGE: &str = "\
cargo bench --bench encoder -- [OPTIONS] [FILTER]

  --models DIR         where the models live (written there when missing); default: a temp dir
  --write-models DIR   write the models to DIR (when missing) and exit
  --serve              read 'MODEL BATCH SEQ' lines on stdin, answer one JSON line each
  --list               print the configurations as 'MODEL BATCH SEQ' lines and exit
  --memory             measure heap bytes instead of time: the peak while loading, what a
                       loaded model holds, and the peak of one forward pass, each against
                       the weight file's size
  --runs N             at least N timed runs per configuration (default 5)
  --min-time S         and at least S seconds of timed runs (default 2)
  FILTER               only configurations whose label contains FILTER (e.g. MiniLM, b8)

Environment: RAYON_NUM_THREADS (candle's threads).";

/// A model shape.
#[derive(Clone, Copy)]
struct Spec {
    /// Directory name and the name in the protocol.
    key: &'static str,
    label: &'static str,
    vit: bool,
    hidden: usize,
    layers: usize,
    heads: usize,
    intermediate: usize,
    vocab: usize,
}

const MODELS: [Spec; 3] = [
    Spec {
        key: "bert-base",
        label: "BERT-base",
        vit: false,
        hidden: 768,
        layers: 12,
        heads: 12,
        intermediate: 3072,
        vocab: 30522,
    },
    Spec {
        key: "minilm",
        label: "MiniLM-L6",
        vit: false,
        hidden: 384,
        layers: 6,
        heads: 12,
        intermediate: 1536,
        vocab: 30522,
    },
    Spec {
        key: "vit-base",
        label: "ViT-base/16",
        vit: true,
        hidden: 768,
        layers: 12,
        heads: 12,
        intermediate: 3072,
        vocab: 0,
    },
];

const MAX_POSITIONS: usize = 512;
const IMAGE: usize = 224;
const PATCH: usize = 16;

fn spec(key: &str) -> BenchResult<Spec> {
    MODELS
        .iter()
        .find(|s| s.key == key)
        .copied()
        .ok_or_else(|| format!("unknown model {key:?} (bert-base, minilm, vit-base)").into())
}

/// One timed configuration: `batch` inputs of `seq` tokens (ViT: `seq` = image size).
#[derive(Clone, Copy)]
struct Config {
    spec: Spec,
    batch: usize,
    seq: usize,
}

impl Config {
    fn label(&self) -> String {
        if self.spec.vit {
            format!("{} {}px b{}", self.spec.label, self.seq, self.batch)
        } else {
            format!("{} {} tok b{}", self.spec.label, self.seq, self.batch)
        }
    }

    fn line(&self) -> String {
        format!("{} {} {}", self.spec.key, self.batch, self.seq)
    }
}

fn configs() -> Vec<Config> {
    let mut v = Vec::new();
    for spec in &MODELS[..2] {
        for batch in [1, 8] {
            for seq in [8, 32, 128] {
                v.push(Config {
                    spec: *spec,
                    batch,
                    seq,
                });
            }
        }
    }
    v.push(Config {
        spec: MODELS[2],
        batch: 1,
        seq: IMAGE,
    });
    v
}

/// Deterministic values in [-scale, scale] (an LCG; speed does not depend on them).
fn fill(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

type Named = Vec<(String, Vec<usize>, Vec<f32>)>;

/// Appends a tensor of deterministic random values; each gets the next seed.
fn rand(out: &mut Named, seed: &mut u64, name: &str, shape: &[usize]) {
    *seed += 1;
    let n = shape.iter().product();
    out.push((name.to_string(), shape.to_vec(), fill(n, *seed, 0.04)));
}

/// LayerNorm `{name}.weight` = 1, `{name}.bias` = 0.
fn norm(out: &mut Named, name: &str, d: usize) {
    out.push((format!("{name}.weight"), vec![d], vec![1.0; d]));
    out.push((format!("{name}.bias"), vec![d], vec![0.0; d]));
}

/// `{name}.weight [o, i]` and `{name}.bias [o]`.
fn linear(out: &mut Named, seed: &mut u64, name: &str, i: usize, o: usize) {
    rand(out, seed, &format!("{name}.weight"), &[o, i]);
    rand(out, seed, &format!("{name}.bias"), &[o]);
}

/// Tensors of a `BertModel` / `ViTModel` checkpoint: (name, shape, values).
fn tensors(s: &Spec) -> Named {
    let d = s.hidden;
    let mut out = Vec::new();
    let seed = &mut 1u64;
    if s.vit {
        let g = IMAGE / PATCH;
        rand(&mut out, seed, "embeddings.cls_token", &[1, 1, d]);
        rand(
            &mut out,
            seed,
            "embeddings.position_embeddings",
            &[1, g * g + 1, d],
        );
        rand(
            &mut out,
            seed,
            "embeddings.patch_embeddings.projection.weight",
            &[d, 3, PATCH, PATCH],
        );
        rand(
            &mut out,
            seed,
            "embeddings.patch_embeddings.projection.bias",
            &[d],
        );
    } else {
        rand(&mut out, seed, "embeddings.word_embeddings.weight", &[s.vocab, d]);
        rand(
            &mut out,
            seed,
            "embeddings.position_embeddings.weight",
            &[MAX_POSITIONS, d],
        );
        rand(&mut out, seed, "embeddings.token_type_embeddings.weight", &[2, d]);
        norm(&mut out, "embeddings.LayerNorm", d);
    }
    for l in 0..s.layers {
        let p = format!("encoder.layer.{l}");
        let att = if s.vit {
            "attention.attention"
        } else {
            "attention.self"
        };
        for qkv in ["query", "key", "value"] {
            linear(&mut out, seed, &format!("{p}.{att}.{qkv}"), d, d);
        }
        linear(&mut out, seed, &format!("{p}.attention.output.dense"), d, d);
        linear(
            &mut out,
            seed,
            &format!("{p}.intermediate.dense"),
            d,
            s.intermediate,
        );
        linear(&mut out, seed, &format!("{p}.output.dense"), s.intermediate, d);
        if s.vit {
            norm(&mut out, &format!("{p}.layernorm_before"), d);
            norm(&mut out, &format!("{p}.layernorm_after"), d);
        } else {
            norm(&mut out, &format!("{p}.attention.output.LayerNorm"), d);
            norm(&mut out, &format!("{p}.output.LayerNorm"), d);
        }
    }
    if s.vit {
        norm(&mut out, "layernorm", d);
    }
    linear(&mut out, seed, "pooler.dense", d, d);
    out
}

fn config_json(s: &Spec) -> serde_json::Value {
    let common = json!({
        "hidden_size": s.hidden,
        "num_hidden_layers": s.layers,
        "num_attention_heads": s.heads,
        "intermediate_size": s.intermediate,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "layer_norm_eps": 1e-12,
        "initializer_range": 0.02,
        "dtype": "float32",
    });
    let mut v = common.as_object().unwrap().clone();
    let extra = if s.vit {
        json!({
            "architectures": ["ViTModel"],
            "model_type": "vit",
            "image_size": IMAGE,
            "patch_size": PATCH,
            "num_channels": 3,
            "qkv_bias": true,
        })
    } else {
        json!({
            "architectures": ["BertModel"],
            "model_type": "bert",
            "vocab_size": s.vocab,
            "max_position_embeddings": MAX_POSITIONS,
            "type_vocab_size": 2,
            "pad_token_id": 0,
            "position_embedding_type": "absolute",
        })
    };
    v.extend(extra.as_object().unwrap().clone());
    serde_json::Value::Object(v)
}

/// Writes `dir/{key}/config.json` and `model.safetensors` unless both are there.
fn write_model(dir: &Path, s: &Spec) -> BenchResult<PathBuf> {
    let out = dir.join(s.key);
    let (cfg, weights) = (out.join("config.json"), out.join("model.safetensors"));
    if cfg.is_file() && weights.is_file() {
        return Ok(out);
    }
    std::fs::create_dir_all(&out)?;
    eprintln!("writing {} ...", weights.display());
    let ts = tensors(s);
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = ts
        .into_iter()
        .map(|(n, shape, v)| (n, shape, v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views = bytes
        .iter()
        .map(|(n, shape, b)| Ok((n.clone(), TensorView::new(Dtype::F32, shape.clone(), b)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    let tmp = out.join("model.safetensors.part");
    safetensors::tensor::serialize_to_file(views, None, &tmp)?;
    std::fs::rename(&tmp, &weights)?;
    std::fs::write(&cfg, serde_json::to_vec_pretty(&config_json(s))?)?;
    Ok(out)
}

/// Loads a model directory the way the CLI does.
fn load(dir: &Path) -> BenchResult<Model<CpuBackend>> {
    let cfg = std::fs::read(dir.join("config.json"))?;
    let config = ModelConfig::from_json("config.json", &cfg)?;
    let ckpt = Checkpoint::from_dir(dir)?;
    Ok(Model::load(&CpuBackend::new(), config, ckpt)?)
}

/// Token ids of input `b`: exactly `seq` of them (pytorch_encoder.py uses the same formula).
fn token_ids(b: usize, seq: usize) -> Vec<u32> {
    (0..seq)
        .map(|t| (1000 + (b * 7919 + t * 104729 + 17) % 28000) as u32)
        .collect()
}

/// A `[3, size, size]` image in [-1, 1] (pytorch_encoder.py uses the same formula).
fn pixels(b: usize, size: usize) -> Vec<f32> {
    let n = 3 * size * size;
    (0..n)
        .map(|i| (((b * n + i) * 7919 % 2001) as f64 / 1000.0 - 1.0) as f32)
        .collect()
}

struct Timing {
    median: Duration,
    min: Duration,
    runs: usize,
    /// The first values of the first input's last hidden state (to check PyTorch runs the
    /// same weights).
    sample: Vec<f32>,
}

/// Warm-up (one run, then more until 0.5 s or 3 runs), then at least `runs` timed runs and
/// at least `min_time` of them (at most 200 runs); the median.
fn time(run: &dyn Fn() -> BenchResult<Vec<f32>>, runs: usize, min_time: Duration) -> BenchResult<Timing> {
    let t0 = Instant::now();
    let sample = run()?;
    let mut warm = 1;
    while warm < 3 && t0.elapsed() < Duration::from_millis(500) {
        run()?;
        warm += 1;
    }
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < runs || (start.elapsed() < min_time && times.len() < 200) {
        let t = Instant::now();
        run()?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok(Timing {
        median: times[times.len() / 2],
        min: times[0],
        runs: times.len(),
        sample,
    })
}

fn time_config(
    model: &Model<CpuBackend>,
    c: &Config,
    runs: usize,
    min_time: Duration,
) -> BenchResult<Timing> {
    let be = CpuBackend::new();
    let want = Want::default();
    let first = |p: Vec<webformer::engine::model::Prediction>| -> Vec<f32> {
        p.first().map(|p| p.cls[..8].to_vec()).unwrap_or_default()
    };
    if c.spec.vit {
        let images: Vec<Vec<f32>> = (0..c.batch).map(|b| pixels(b, c.seq)).collect();
        time(
            &|| Ok(first(model.run_images(&be, &images, want)?)),
            runs,
            min_time,
        )
    } else {
        let inputs: Vec<Vec<u32>> = (0..c.batch).map(|b| token_ids(b, c.seq)).collect();
        time(&|| Ok(first(model.run_text(&be, &inputs, want)?)), runs, min_time)
    }
}

struct Opts {
    models: Option<PathBuf>,
    write_only: bool,
    serve: bool,
    list: bool,
    memory: bool,
    runs: usize,
    min_time: Duration,
    filter: Option<String>,
}

fn opts() -> BenchResult<Opts> {
    let mut o = Opts {
        models: None,
        write_only: false,
        serve: false,
        list: false,
        memory: false,
        runs: 5,
        min_time: Duration::from_secs(2),
        filter: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |what: &str| args.next().ok_or_else(|| format!("{what} needs a value"));
        match a.as_str() {
            "--models" => o.models = Some(value("--models")?.into()),
            "--write-models" => {
                o.models = Some(value("--write-models")?.into());
                o.write_only = true;
            }
            "--serve" => o.serve = true,
            "--list" => o.list = true,
            "--memory" => o.memory = true,
            "--runs" => o.runs = value("--runs")?.parse()?,
            "--min-time" => o.min_time = Duration::from_secs_f64(value("--min-time")?.parse()?),
            // What `cargo bench` passes to every bench target.
            "--bench" => {}
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            f if !f.starts_with('-') => o.filter = Some(f.to_string()),
            other => return Err(format!("unknown option {other}\n{USAGE}").into()),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("encoder bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> BenchResult<()> {
    let o = opts()?;
    let threads = candle_core::utils::get_num_threads();
    let wanted: Vec<Config> = configs()
        .into_iter()
        .filter(|c| o.filter.as_ref().is_none_or(|f| c.label().contains(f.as_str())))
        .collect();
    if o.list {
        for c in &wanted {
            println!("{}", c.line());
        }
        return Ok(());
    }
    let _tmp;
    let dir = match &o.models {
        Some(d) => d.clone(),
        None => {
            _tmp = tempfile::tempdir()?;
            _tmp.path().to_path_buf()
        }
    };
    if o.write_only {
        for s in &MODELS {
            write_model(&dir, s)?;
        }
        return Ok(());
    }
    if o.serve {
        return serve(&dir, &o, threads);
    }
    if wanted.is_empty() {
        return Err("no configuration matches the filter".into());
    }
    if o.memory {
        return memory(&dir, &wanted);
    }

    let mut rows = Vec::new();
    let mut loaded: Option<(&str, Model<CpuBackend>)> = None;
    for (i, c) in wanted.iter().enumerate() {
        if loaded.as_ref().is_none_or(|(k, _)| *k != c.spec.key) {
            drop(loaded.take()); // free the previous model before loading the next
            let path = write_model(&dir, &c.spec)?;
            loaded = Some((c.spec.key, load(&path)?));
        }
        let model = &loaded.as_ref().unwrap().1;
        eprintln!("[{}/{}] {} ...", i + 1, wanted.len(), c.label());
        let t = time_config(model, c, o.runs, o.min_time)?;
        rows.push((c, t));
    }
    println!("CPU backend (candle), {threads} threads; forward pass without attentions, median of the runs after warm-up.");
    println!();
    println!("| config | tokens | median ms | min ms | runs | tokens/s |");
    println!("|---|--:|--:|--:|--:|--:|");
    for (c, t) in rows {
        let tokens = if c.spec.vit {
            c.batch * ((c.seq / PATCH).pow(2) + 1)
        } else {
            c.batch * c.seq
        };
        let ms = t.median.as_secs_f64() * 1e3;
        println!(
            "| {} | {tokens} | {ms:.2} | {:.2} | {} | {:.0} |",
            c.label(),
            t.min.as_secs_f64() * 1e3,
            t.runs,
            tokens as f64 / t.median.as_secs_f64()
        );
    }
    Ok(())
}

/// Heap bytes per model: the peak while loading (file bytes + parsed tensors + the model),
/// what the loaded model holds, and per configuration the peak above that during one
/// forward pass (activations, attention scores, candle's temporaries), all against the
/// size of the weights file. One forward each (after a warm-up one), on this thread.
fn memory(dir: &Path, wanted: &[Config]) -> BenchResult<()> {
    let mb = |b: usize| b as f64 / (1 << 20) as f64;
    let be = CpuBackend::new();
    let mut rows = Vec::new();
    let mut loaded: Option<(&str, Model<CpuBackend>, usize, usize, usize)> = None;
    for c in wanted {
        if loaded.as_ref().is_none_or(|(k, ..)| *k != c.spec.key) {
            drop(loaded.take());
            let path = write_model(dir, &c.spec)?;
            let weights = std::fs::metadata(path.join("model.safetensors"))?.len() as usize;
            let base = reset_peak();
            let model = load(&path)?;
            let load_peak = PEAK.load(Ordering::Relaxed) - base;
            let held = LIVE.load(Ordering::Relaxed) - base;
            loaded = Some((c.spec.key, model, weights, load_peak, held));
        }
        let (_, model, weights, load_peak, held) = loaded.as_ref().unwrap();
        eprintln!("{} ...", c.label());
        let want = Want::default();
        let forward = || -> BenchResult<()> {
            if c.spec.vit {
                let images: Vec<Vec<f32>> = (0..c.batch).map(|b| pixels(b, c.seq)).collect();
                model.run_images(&be, &images, want)?;
            } else {
                let inputs: Vec<Vec<u32>> = (0..c.batch).map(|b| token_ids(b, c.seq)).collect();
                model.run_text(&be, &inputs, want)?;
            }
            Ok(())
        };
        forward()?; // lazily built tables and thread pools are not the forward's cost
        let base = reset_peak();
        forward()?;
        let extra = PEAK.load(Ordering::Relaxed) - base;
        rows.push((c.label(), *weights, *load_peak, *held, extra));
    }
    println!("Heap bytes (a counting allocator around the system one), CPU backend.");
    println!();
    println!("| config | weights file MB | load peak MB (×weights) | model holds MB (×) | forward peak above it MB (×weights) |");
    println!("|---|--:|--:|--:|--:|");
    for (label, w, lp, h, e) in rows {
        let x = |b: usize| b as f64 / w as f64;
        println!(
            "| {label} | {:.1} | {:.1} ({:.2}×) | {:.1} ({:.2}×) | {:.1} ({:.3}×) |",
            mb(w),
            mb(lp),
            x(lp),
            mb(h),
            x(h),
            mb(e),
            x(e)
        );
    }
    Ok(())
}

/// One configuration per stdin line (`MODEL BATCH SEQ`), one JSON line per answer; the
/// model stays loaded while consecutive lines name it.
fn serve(dir: &Path, o: &Opts, threads: usize) -> BenchResult<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(
        out,
        "{}",
        json!({"ready": true, "engine": "webformer", "threads": threads, "kernels": webformer::engine::backend::cpu::kernels()})
    )?;
    out.flush()?;
    let mut loaded: Option<(String, Model<CpuBackend>)> = None;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [key, batch, seq] = parts.as_slice() else {
            if parts.is_empty() {
                continue;
            }
            return Err(format!("bad line {line:?}: want MODEL BATCH SEQ").into());
        };
        let c = Config {
            spec: spec(key)?,
            batch: batch.parse()?,
            seq: seq.parse()?,
        };
        if loaded.as_ref().is_none_or(|(k, _)| k != key) {
            drop(loaded.take()); // free the previous model before loading the next
            let path = write_model(dir, &c.spec)?;
            loaded = Some((key.to_string(), load(&path)?));
        }
        let t = time_config(&loaded.as_ref().unwrap().1, &c, o.runs, o.min_time)?;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        writeln!(
            out,
            "{}",
            json!({
                "model": key, "batch": c.batch, "seq": c.seq, "label": c.label(),
                "median_ms": ms(t.median), "min_ms": ms(t.min), "runs": t.runs,
                "threads": threads, "sample": t.sample,
            })
        )?;
        out.flush()?;
    }
    Ok(())
}
