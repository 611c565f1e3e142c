//! GEMM benchmark: `Backend::linear` (`y[n, m] = x[n, k] · wᵀ + b`) on the WebGPU backend
//! (the tiled matmul in `matmul.wgsl`) and on the CPU backend (candle), for the shapes of
//! BERT-base and MiniLM encoders. Prints one markdown table: median time per linear and
//! GFLOP/s (2·n·k·m / time), plus the GPU-vs-CPU difference for every shape so that a
//! broken kernel cannot report a fast wrong number.
//!
//!     cargo bench --features webgpu --bench gemm [-- --quick] [-- --runs N] ...
//!
//! See bench/README.md. A CPU adapter (lavapipe/llvmpipe, SwiftShader) is labelled as such:
//! its timings are not GPU performance.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use webformer::engine::backend::cpu::CpuBackend;
use webformer::engine::backend::webgpu::WgpuBackend;
use webformer::engine::backend::Backend;

/// GPU result vs CPU result: max |gpu − cpu| / max |cpu| above this fails the run.
const TOLERANCE: f64 = 1e-4;

const USAGE: &str = "\
cargo bench --features webgpu --bench gemm -- [OPTIONS] [FILTER]

  --quick             fewer and shorter runs (no extra warm-up, 3 runs of ~50 ms, <= 64 linears each)
  --runs N            timed runs per shape and backend; the median is reported (default 7)
  --reps R            linears per timed run (default: enough for ~200 ms, 50 ms with --quick)
  --peak-gflops X     the device's fp32 peak in GFLOP/s: adds a '% of peak' column
  --no-cpu            skip timing the CPU backend (it still computes the reference)
  --no-gpu            skip timing the WebGPU backend (it still checks correctness)
  --scalar            also time the scalar-load matmul kernel (the vec4 one's predecessor)
  FILTER              only shapes whose label contains FILTER (e.g. MiniLM, 1024, FFN)

Environment: GEMM_RUNS, GEMM_REPS, GEMM_QUICK=1, GEMM_PEAK_GFLOPS, GEMM_FILTER.";

struct Shape {
    model: &'static str,
    what: &'static str,
    n: usize,
    k: usize,
    m: usize,
}

impl Shape {
    fn label(&self) -> String {
        format!("{} {}", self.model, self.what)
    }

    fn dims(&self) -> String {
        format!("{}×{}→{}", self.n, self.k, self.m)
    }

    fn flops(&self) -> f64 {
        2.0 * self.n as f64 * self.k as f64 * self.m as f64
    }
}

fn shapes() -> Vec<Shape> {
    let mut v = Vec::new();
    for (model, n) in [("BERT-base", 128), ("BERT-base b8", 1024)] {
        for (what, k, m) in [
            ("QKV/out proj", 768, 768),
            ("FFN up", 768, 3072),
            ("FFN down", 3072, 768),
        ] {
            v.push(Shape { model, what, n, k, m });
        }
    }
    for (what, k, m) in [
        ("QKV/out proj", 384, 384),
        ("FFN up", 384, 1536),
        ("FFN down", 1536, 384),
    ] {
        v.push(Shape {
            model: "MiniLM",
            what,
            n: 128,
            k,
            m,
        });
    }
    v
}

struct Opts {
    runs: usize,
    /// Untimed linears before the sizing run.
    warmup: usize,
    reps: Option<usize>,
    /// Wall time one timed run aims at when `reps` is not given.
    target: Duration,
    max_reps: usize,
    peak_gflops: Option<f64>,
    cpu: bool,
    gpu: bool,
    scalar: bool,
    filter: Option<String>,
}

fn parse_num<T: std::str::FromStr>(what: &str, s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("{what}: not a number: {s:?}"))
}

fn opts() -> Result<Opts, String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut quick = env("GEMM_QUICK").is_some_and(|v| v != "0");
    let mut runs: Option<usize> = env("GEMM_RUNS").map(|v| parse_num("GEMM_RUNS", &v)).transpose()?;
    let mut reps: Option<usize> = env("GEMM_REPS").map(|v| parse_num("GEMM_REPS", &v)).transpose()?;
    let mut peak_gflops: Option<f64> = env("GEMM_PEAK_GFLOPS")
        .map(|v| parse_num("GEMM_PEAK_GFLOPS", &v))
        .transpose()?;
    let mut filter = env("GEMM_FILTER");
    let (mut cpu, mut gpu, mut scalar) = (true, true, false);

    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            // `cargo bench` passes `--bench` to harness = false targets.
            "--bench" => {}
            "--quick" => quick = true,
            "--runs" => runs = Some(parse_num("--runs", &value("--runs")?)?),
            "--reps" => reps = Some(parse_num("--reps", &value("--reps")?)?),
            "--peak-gflops" => peak_gflops = Some(parse_num("--peak-gflops", &value("--peak-gflops")?)?),
            "--no-cpu" => cpu = false,
            "--no-gpu" => gpu = false,
            "--scalar" => scalar = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            s if s.starts_with('-') => return Err(format!("unknown option {s}\n\n{USAGE}")),
            s => filter = Some(s.to_string()),
        }
    }
    let runs = runs.unwrap_or(if quick { 3 } else { 7 });
    if runs == 0 || reps == Some(0) {
        return Err("--runs and --reps must be at least 1".into());
    }
    Ok(Opts {
        runs,
        warmup: if quick { 0 } else { 2 },
        reps,
        target: Duration::from_millis(if quick { 50 } else { 200 }),
        max_reps: if quick { 64 } else { 1000 },
        peak_gflops,
        cpu,
        gpu,
        scalar,
        filter,
    })
}

/// Deterministic data in [-scale, scale) (xorshift), so every run times the same numbers.
fn data(len: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    }
}

struct Timing {
    /// Median time of one linear.
    per_linear: Duration,
    /// Linears per timed run.
    reps: usize,
    /// Median time of one read-back of the output with the device idle (subtracted).
    readback: Duration,
}

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Times `linear()` (one `y = x · wᵀ + b` on `be`): warm-up, then `opts.runs` runs of R linears followed by one
/// download of the last output (which waits for the device to finish them all). The
/// read-back of one idle output is measured separately and subtracted from every run.
fn time_linear<B: Backend>(
    be: &B,
    linear: impl Fn() -> Result<B::Tensor, webformer::engine::EngineError>,
    out_bytes: usize,
    opts: &Opts,
) -> BenchResult<Timing> {
    // Warm-up (first use of the pipeline, allocator, thread pool); the correctness check
    // has already run one linear, and the sizing run below is one more.
    for _ in 0..opts.warmup {
        let y = linear()?;
        be.download(&y)?;
    }
    // One linear with its read-back, and the read-back alone, to size the runs.
    let t = Instant::now();
    let y = linear()?;
    be.download(&y)?;
    let single = t.elapsed();
    let readback = median(
        (0..5)
            .map(|_| {
                let t = Instant::now();
                be.download(&y).map(|_| t.elapsed())
            })
            .collect::<Result<_, _>>()?,
    );
    drop(y);
    let reps = opts.reps.unwrap_or_else(|| {
        let per = single.saturating_sub(readback).max(Duration::from_micros(1));
        // Outputs of queued linears stay allocated until the device finishes them: keep
        // at most ~1 GiB in flight.
        let mem_cap = ((1usize << 30) / out_bytes.max(1)).max(1);
        ((opts.target.as_secs_f64() / per.as_secs_f64()) as usize).clamp(1, opts.max_reps.min(mem_cap))
    });

    let mut times = Vec::with_capacity(opts.runs);
    for _ in 0..opts.runs {
        let t = Instant::now();
        let mut last = linear()?;
        for _ in 1..reps {
            last = linear()?;
        }
        be.download(&last)?;
        let dt = t.elapsed().saturating_sub(readback);
        times.push(dt / reps as u32);
    }
    Ok(Timing {
        per_linear: median(times),
        reps,
        readback,
    })
}

struct Row {
    shape: String,
    dims: String,
    backend: String,
    timing: Timing,
    gflops: f64,
    is_gpu: bool,
    /// GPU vs CPU, on the first row of each shape.
    diff: Option<f64>,
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("gemm bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Returns whether every shape's GPU result matched the CPU's.
fn run() -> BenchResult<bool> {
    let opts = opts()?;
    let cpu = CpuBackend::new();
    let gpu = WgpuBackend::new()?;
    let info = gpu.adapter_info().clone();
    let cpu_adapter = info.device_type == wgpu::DeviceType::Cpu
        || ["llvmpipe", "lavapipe", "swiftshader"]
            .iter()
            .any(|s| info.name.to_lowercase().contains(s));
    // The name without its details ("llvmpipe (LLVM 15.0.6, 256 bits)" → "llvmpipe").
    let short = info.name.split(" (").next().unwrap_or(&info.name);
    let gpu_label = if cpu_adapter {
        format!("webgpu: {short}, CPU adapter")
    } else {
        format!("webgpu: {short}")
    };
    let threads = candle_core::utils::get_num_threads();
    let cpu_label = format!("cpu: candle, {threads} threads");

    let shapes: Vec<Shape> = shapes()
        .into_iter()
        .filter(|s| {
            opts.filter
                .as_ref()
                .is_none_or(|f| format!("{} {}", s.label(), s.dims()).contains(f.as_str()))
        })
        .collect();
    if shapes.is_empty() {
        return Err("no shape matches the filter".into());
    }

    let mut rows = Vec::new();
    let mut all_ok = true;
    for (i, s) in shapes.iter().enumerate() {
        eprintln!("[{}/{}] {} {} ...", i + 1, shapes.len(), s.label(), s.dims());
        let xs = data(s.n * s.k, 3 * i as u64 + 1, 1.0);
        let ws = data(s.m * s.k, 3 * i as u64 + 2, 1.0 / (s.k as f32).sqrt());
        let bs = data(s.m, 3 * i as u64 + 3, 0.1);
        let out_bytes = s.n * s.m * 4;

        // Correctness first: the GPU result against candle's, on the same inputs.
        let (cx, cw, cb) = (
            cpu.upload(&xs, &[s.n, s.k])?,
            cpu.upload(&ws, &[s.m, s.k])?,
            cpu.upload(&bs, &[s.m])?,
        );
        let want = cpu.download(&cpu.linear(&cx, &cw, Some(&cb))?)?;
        let (gx, gw, gb) = (
            gpu.upload(&xs, &[s.n, s.k])?,
            gpu.upload(&ws, &[s.m, s.k])?,
            gpu.upload(&bs, &[s.m])?,
        );
        let got = gpu.download(&gpu.linear(&gx, &gw, Some(&gb))?)?;
        let scale = want
            .iter()
            .fold(0f64, |a, &v| a.max(v.abs() as f64))
            .max(f64::MIN_POSITIVE);
        let max_abs = if got.len() == want.len() {
            got.iter()
                .zip(&want)
                .fold(0f64, |a, (&g, &c)| a.max(((g - c) as f64).abs()))
        } else {
            f64::INFINITY
        };
        // NaN compares false: count it as a failure.
        let diff = if max_abs.is_nan() {
            f64::INFINITY
        } else {
            max_abs / scale
        };
        let ok = diff <= TOLERANCE;
        all_ok &= ok;
        if !ok {
            eprintln!("  WRONG: GPU vs CPU max relative diff {diff:.2e} > {TOLERANCE:.0e}");
        }

        if opts.gpu {
            let timing = time_linear(&gpu, || gpu.linear(&gx, &gw, Some(&gb)), out_bytes, &opts)?;
            eprintln!(
                "  webgpu: {:.3} ms × {} (read-back {:.3} ms subtracted)",
                timing.per_linear.as_secs_f64() * 1e3,
                timing.reps,
                timing.readback.as_secs_f64() * 1e3
            );
            rows.push(Row {
                shape: s.label(),
                dims: s.dims(),
                backend: gpu_label.clone(),
                gflops: s.flops() / timing.per_linear.as_secs_f64() / 1e9,
                timing,
                is_gpu: true,
                diff: Some(diff),
            });
        }
        if opts.gpu && opts.scalar && s.k % 4 == 0 {
            let got = gpu.download(&gpu.linear_scalar(&gx, &gw, Some(&gb))?)?;
            let max_abs = got
                .iter()
                .zip(&want)
                .fold(0f64, |a, (&g, &c)| a.max(((g - c) as f64).abs()));
            let diff = if max_abs.is_nan() {
                f64::INFINITY
            } else {
                max_abs / scale
            };
            all_ok &= diff <= TOLERANCE;
            let timing = time_linear(&gpu, || gpu.linear_scalar(&gx, &gw, Some(&gb)), out_bytes, &opts)?;
            eprintln!(
                "  webgpu scalar kernel: {:.3} ms × {}",
                timing.per_linear.as_secs_f64() * 1e3,
                timing.reps
            );
            rows.push(Row {
                shape: s.label(),
                dims: s.dims(),
                backend: format!("{gpu_label}, scalar kernel"),
                gflops: s.flops() / timing.per_linear.as_secs_f64() / 1e9,
                timing,
                is_gpu: true,
                diff: Some(diff),
            });
        }
        drop((gx, gw, gb));
        if opts.cpu {
            let timing = time_linear(&cpu, || cpu.linear(&cx, &cw, Some(&cb)), out_bytes, &opts)?;
            eprintln!(
                "  cpu: {:.3} ms × {}",
                timing.per_linear.as_secs_f64() * 1e3,
                timing.reps
            );
            rows.push(Row {
                shape: s.label(),
                dims: s.dims(),
                backend: cpu_label.clone(),
                gflops: s.flops() / timing.per_linear.as_secs_f64() / 1e9,
                timing,
                is_gpu: false,
                diff: (!opts.gpu).then_some(diff),
            });
        }
    }

    println!();
    println!("GEMM: `Backend::linear`, y[n, m] = x[n, k] · wᵀ + b (GFLOP/s = 2·n·k·m / median time)");
    println!();
    println!(
        "- WebGPU adapter: {} — type {:?}, {:?}, driver {} {}",
        info.name, info.device_type, info.backend, info.driver, info.driver_info
    );
    if cpu_adapter {
        println!(
            "- **This WebGPU adapter is a CPU (software) implementation: its timings are not GPU performance.**"
        );
    }
    println!("- CPU backend: candle, {threads} threads");
    println!(
        "- {} timed runs per row (median), after {} warm-up linear(s); each run = R linears then one \
         download; the read-back of one output (device idle) is subtracted",
        opts.runs,
        opts.warmup + 2
    );
    if let Some(p) = opts.peak_gflops {
        println!("- fp32 peak given: {p} GFLOP/s (applies to the WebGPU rows)");
    }
    println!();
    let peak_col = opts.peak_gflops.is_some();
    println!(
        "| shape | n×k→m | backend | R | median ms | GFLOP/s |{} GPU vs CPU max rel diff |",
        if peak_col { " % of peak |" } else { "" }
    );
    println!(
        "|---|---|---|--:|--:|--:|{}---|",
        if peak_col { "--:|" } else { "" }
    );
    for r in &rows {
        let peak = match (opts.peak_gflops, r.is_gpu) {
            (Some(p), true) => format!(" {:.1}% |", 100.0 * r.gflops / p),
            (Some(_), false) => " |".to_string(),
            (None, _) => String::new(),
        };
        let diff = match r.diff {
            Some(d) if d <= TOLERANCE => format!("{d:.1e}"),
            Some(d) => format!("**{d:.1e} WRONG**"),
            None => String::new(),
        };
        println!(
            "| {} | {} | {} | {} | {:.3} | {:.1} |{} {} |",
            r.shape,
            r.dims,
            r.backend,
            r.timing.reps,
            r.timing.per_linear.as_secs_f64() * 1e3,
            r.gflops,
            peak,
            diff
        );
    }
    if !all_ok {
        println!();
        println!("**The GPU result differs from the CPU's beyond {TOLERANCE:.0e} for at least one shape: its timings mean nothing.**");
    }
    Ok(all_ok)
}
