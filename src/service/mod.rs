//! The worker's state and request handling, free of web APIs so it runs in native tests.
//!
//! The model runs on the GPU when the worker was given one ([`Service::use_gpu`]), else on
//! the CPU. If the GPU fails (device lost, driver reset) the service rebuilds the model on
//! the CPU from the files it kept, runs the request again there and records the change
//! for the page ([`Service::take_backend_change`]): the user's request is answered, not lost.

mod finetune;
mod finetune_images;
mod jobs;

use std::future::Future;
use std::pin::Pin;

use crate::engine::backend::cpu::CpuBackend;
#[cfg(feature = "webgpu")]
use crate::engine::backend::webgpu::WgpuBackend;
use crate::engine::backend::Backend;
use crate::engine::checkpoint::Bytes;
use crate::engine::dataset::CsvTable;
use crate::engine::encoder::Want;
use crate::engine::finetune::HeadMeta;
use crate::engine::pipeline::Pipeline;
use crate::engine::tokenize::TextTokenizer;
use crate::engine::train::HostTensor;
use crate::engine::EngineError;
use crate::protocol::{BackendInfo, BackendKind, ModelInfo, Progress, Request, Response};
use jobs::{ClassifyImages, ClassifyText, Job};

#[derive(Default)]
pub struct Service {
    tokenizer: Option<TextTokenizer>,
    cpu: CpuBackend,
    #[cfg(feature = "webgpu")]
    gpu: Option<WgpuBackend>,
    model: Option<Loaded>,
    /// A model built by `BuildModel` and not yet installed or dropped (`UseBuiltModel`).
    staged: Option<Loaded>,
    backend_change: Option<BackendInfo>,
    /// The CSV the user dropped last (fine-tuning).
    csv: Option<CsvTable>,
    /// Embeddings of the last training's texts, keyed by model, file and column: training
    /// again with other settings does not embed again.
    embedded: Option<(String, Vec<Vec<f32>>)>,
    /// The head the user trained or imported, used next to (or instead of) the model's own.
    head: Option<(Vec<HostTensor>, HeadMeta)>,
    /// Embeddings of the last image training's images (or why one could not be read), keyed
    /// by model and the images' fingerprint.
    image_embedded: Option<(String, finetune_images::Embedded)>,
    /// The head trained (or imported) for images, kept apart from the text head.
    image_head: Option<(Vec<HostTensor>, HeadMeta)>,
}

/// What the worker shell gives a request besides its data: where progress goes, whether the
/// user cancelled, and a way to let the browser run (and deliver a cancel) between batches.
pub struct Ctx<'a> {
    pub progress: &'a dyn Fn(Progress),
    pub cancelled: &'a dyn Fn() -> bool,
    pub pause: &'a dyn Fn() -> Pin<Box<dyn Future<Output = ()>>>,
}

impl Ctx<'static> {
    /// No progress, never cancelled, no pauses: native callers and tests.
    pub fn quiet() -> Self {
        Ctx {
            progress: &|_| {},
            cancelled: &|| false,
            pause: &|| Box::pin(std::future::ready(())),
        }
    }
}

struct Loaded {
    engine: Engine,
    info: ModelInfo,
    /// The model's files, kept while it runs on the GPU so that it can be rebuilt on the
    /// CPU if the GPU is lost (in the browser: the JS buffers, outside the wasm memory).
    files: Vec<(String, Box<dyn Bytes>)>,
}

/// Boxed: the two pipelines differ much in size.
enum Engine {
    Cpu(Box<Pipeline<CpuBackend>>),
    #[cfg(feature = "webgpu")]
    Gpu(Box<Pipeline<WgpuBackend>>),
}

/// Borrowed views of named files, as the engine reads them.
fn sources(files: &[(String, Box<dyn Bytes>)]) -> Vec<(String, &dyn Bytes)> {
    files.iter().map(|(n, b)| (n.clone(), b.as_ref())).collect()
}

fn error(e: impl ToString) -> Response {
    Response::Error {
        message: e.to_string(),
    }
}

impl Service {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs models loaded from now on on this GPU.
    #[cfg(feature = "webgpu")]
    pub fn use_gpu(&mut self, gpu: WgpuBackend) {
        self.gpu = Some(gpu);
    }

    /// The backend new work runs on, by name.
    pub fn backend_name(&self) -> String {
        #[cfg(feature = "webgpu")]
        if let Some(gpu) = &self.gpu {
            return gpu.name();
        }
        self.cpu.name()
    }

    /// Set once when the service left the GPU for the CPU; the page shows it.
    pub fn take_backend_change(&mut self) -> Option<BackendInfo> {
        self.backend_change.take()
    }

    /// Handles one request. `files` are the buffers that came with it (`LoadModel`,
    /// `InspectCsv`, `ImportHead`).
    pub async fn handle(&mut self, request: Request, files: Vec<Vec<u8>>, ctx: &Ctx<'_>) -> Response {
        let files = files.into_iter().map(|f| Box::new(f) as Box<dyn Bytes>).collect();
        self.handle_sources(request, files, ctx).await
    }

    /// [`Service::handle`] with buffers that are read as needed: a model's weights are read
    /// tensor by tensor (the worker passes the JS buffers, so the files are never copied
    /// into the wasm memory whole); other requests' files are taken whole.
    pub async fn handle_sources(
        &mut self,
        request: Request,
        sources: Vec<Box<dyn Bytes>>,
        ctx: &Ctx<'_>,
    ) -> Response {
        match request {
            Request::LoadModel { source, names } => {
                match self.build_model(source, names, sources, ctx.progress).await {
                    Ok(loaded) => self.install(loaded, ctx.progress),
                    Err(e) => e,
                }
            }
            Request::BuildModel { source, names } => {
                match self.build_model(source, names, sources, ctx.progress).await {
                    Ok(loaded) => {
                        let info = loaded.info.clone();
                        self.staged = Some(loaded);
                        Response::ModelLoaded(info)
                    }
                    Err(e) => e,
                }
            }
            Request::UseBuiltModel { keep } => match self.staged.take() {
                None => error("no built model is waiting to be put in use"),
                Some(loaded) if keep => self.install(loaded, ctx.progress),
                // Cancelled: the model loaded before stays.
                Some(_) => Response::Done,
            },
            Request::ClassifyText { texts, attentions } => self.classify_text(texts, attentions).await,
            Request::ClassifyImages { names, attentions } => {
                self.classify_images(names, whole(sources), attentions).await
            }
            Request::InspectCsv { name } => self.inspect_csv(name, whole(sources)),
            Request::Train {
                text_col,
                label_col,
                config,
            } => self.train(text_col, label_col, config, ctx).await,
            Request::CancelTraining => Response::Done,
            Request::ExportHead => self.export_head(),
            Request::ImportHead { name } => self.import_head(name, whole(sources)),
            Request::Ping => Response::Pong {
                version: env!("CARGO_PKG_VERSION").to_string(),
                kernels: crate::engine::backend::cpu::kernels(),
            },
            Request::ProbeBackend { .. } => error("backend probing needs the browser's worker"),
            Request::SimulateGpuLoss => self.simulate_gpu_loss(),
            Request::TrainImages {
                classes,
                names,
                config,
            } => {
                self.train_images(classes, names, whole(sources), config, ctx)
                    .await
            }
            Request::ExportImageHead => self.export_image_head(),
            Request::ImportImageHead { name } => self.import_image_head(name, whole(sources)),
            Request::LoadTokenizer { source, json } => {
                match TextTokenizer::from_bytes(&source, json.as_bytes(), None) {
                    Ok(tok) => {
                        let vocab_size = tok.vocab_size();
                        self.tokenizer = Some(tok);
                        Response::TokenizerLoaded { source, vocab_size }
                    }
                    // The previous tokenizer stays installed: a bad file loses nothing.
                    Err(e) => error(e),
                }
            }
            Request::Tokenize { text } => match &self.tokenizer {
                None => error("no tokenizer is loaded yet"),
                Some(tok) => match tok.encode(&text) {
                    Ok(tokens) => Response::Tokens { tokens },
                    Err(e) => error(e),
                },
            },
        }
    }

    /// Builds a model from its files without putting it in use (the answer is an error).
    async fn build_model(
        &mut self,
        source: String,
        names: Vec<String>,
        files: Vec<Box<dyn Bytes>>,
        progress: &dyn Fn(Progress),
    ) -> Result<Loaded, Response> {
        if names.len() != files.len() {
            return Err(error(format!(
                "{} file names but {} file contents arrived",
                names.len(),
                files.len()
            )));
        }
        let named: Vec<(String, Box<dyn Bytes>)> = names.into_iter().zip(files).collect();
        progress(Progress::stage("building the model", 0, 2));
        match self.build(&named, progress).await {
            Ok(engine) => {
                let p = engine.pipeline_info();
                let c = &p.config;
                let info = ModelInfo {
                    source,
                    architecture: format!("{:?}", c.architecture),
                    modality: if c.architecture.is_vision() {
                        "image"
                    } else {
                        "text"
                    }
                    .to_string(),
                    labels: c.labels.clone(),
                    layers: c.num_layers(),
                    heads: p.heads,
                    hidden: c.hidden_size(),
                    backend: self.backend_name(),
                    // The worker fills it in (natively there is no one memory to measure).
                    memory_bytes: None,
                };
                let files = if matches!(engine, Engine::Cpu(_)) {
                    Vec::new()
                } else {
                    named
                };
                Ok(Loaded { engine, info, files })
            }
            Err(e) => Err(error(e)),
        }
    }

    /// Puts a built model in use. Only a model that loaded replaces the current one: a bad
    /// file (or a cancelled build) loses nothing.
    fn install(&mut self, loaded: Loaded, progress: &dyn Fn(Progress)) -> Response {
        // The live token view shows what the model will read: its own tokenizer (until
        // another tokenizer.json is loaded by hand).
        if let Some(tok) = loaded.engine.tokenizer() {
            self.tokenizer = Some(tok.clone());
        }
        let info = loaded.info.clone();
        self.model = Some(loaded);
        progress(Progress::stage("ready", 2, 2));
        Response::ModelLoaded(info)
    }

    /// Builds the model on the GPU (and runs it once, so its kernels are compiled now and
    /// not on the first click), or on the CPU without a GPU or when the GPU fails.
    async fn build(
        &mut self,
        files: &[(String, Box<dyn Bytes>)],
        progress: &dyn Fn(Progress),
    ) -> Result<Engine, EngineError> {
        let files = sources(files);
        let files = files.as_slice();
        #[cfg(feature = "webgpu")]
        if let Some(gpu) = &self.gpu {
            let built = match Pipeline::from_sources(gpu, files) {
                Ok(p) => {
                    progress(Progress::stage("compiling GPU kernels", 1, 2));
                    p.warm_up(gpu).await.map(|()| p)
                }
                Err(e) => Err(e),
            };
            match built {
                Ok(p) => return Ok(Engine::Gpu(Box::new(p))),
                Err(e) => match gpu.failure() {
                    // The GPU broke: go on with the CPU.
                    Some(why) => self.leave_gpu(why),
                    // The files are at fault; the CPU would say the same.
                    None => return Err(e),
                },
            }
        }
        let _ = progress;
        Pipeline::from_sources(&self.cpu, files).map(|p| Engine::Cpu(Box::new(p)))
    }

    /// Drops the GPU for good and tells the page why.
    #[cfg(feature = "webgpu")]
    fn leave_gpu(&mut self, why: String) {
        self.gpu = None;
        self.backend_change = Some(BackendInfo {
            kind: BackendKind::Cpu,
            adapter: None,
            reason: Some(format!("{why}; switched to the CPU")),
        });
    }

    /// After a GPU failure: the loaded model again, on the CPU, from its kept files.
    #[cfg(feature = "webgpu")]
    fn rebuild_on_cpu(&mut self) -> Result<(), EngineError> {
        if let Some(gpu) = &self.gpu {
            let why = gpu.failure().unwrap_or_else(|| "the GPU failed".to_string());
            self.leave_gpu(why);
        }
        if let Some(m) = &mut self.model {
            if matches!(m.engine, Engine::Gpu(_)) {
                m.engine = Engine::Cpu(Box::new(Pipeline::from_sources(&self.cpu, &sources(&m.files))?));
                m.files = Vec::new();
                m.info.backend = self.cpu.name();
            }
        }
        Ok(())
    }

    async fn classify_text(&mut self, texts: Vec<String>, attentions: bool) -> Response {
        let want = Want {
            attentions,
            hidden_states: false,
        };
        let results = match self.run(ClassifyText { texts, want }).await {
            Ok(r) => r,
            Err(e) => return error(e),
        };
        self.with_head(results)
    }

    async fn classify_images(
        &mut self,
        names: Vec<String>,
        files: Vec<Vec<u8>>,
        attentions: bool,
    ) -> Response {
        if names.len() != files.len() {
            return error(format!(
                "{} image names but {} contents arrived",
                names.len(),
                files.len()
            ));
        }
        let want = Want {
            attentions,
            hidden_states: false,
        };
        let images = names.into_iter().zip(files).collect();
        match self.run(ClassifyImages { images, want }).await {
            Ok(results) => self.with_image_head(results),
            Err(e) => error(e),
        }
    }

    /// Runs a job on the loaded model, on the GPU or the CPU; a GPU failure moves the model
    /// to the CPU and runs the job again there.
    async fn run<J: Job>(&mut self, job: J) -> Result<J::Output, EngineError> {
        let Some(model) = &self.model else {
            return Err(EngineError::Input("no model is loaded yet".into()));
        };
        let failed = match &model.engine {
            Engine::Cpu(p) => return job.run(p, &self.cpu).await,
            #[cfg(feature = "webgpu")]
            Engine::Gpu(p) => {
                let Some(gpu) = &self.gpu else {
                    return Err(EngineError::Input(
                        "internal error: a GPU model without a GPU".into(),
                    ));
                };
                match job.run(p, gpu).await {
                    Err(e) if gpu.failure().is_some() => e,
                    other => return other,
                }
            }
        };
        self.retry_on_cpu(job, failed).await
    }

    #[cfg(feature = "webgpu")]
    async fn retry_on_cpu<J: Job>(&mut self, job: J, failed: EngineError) -> Result<J::Output, EngineError> {
        if let Err(e) = self.rebuild_on_cpu() {
            return Err(EngineError::Input(format!(
                "the GPU failed ({failed}) and the CPU could not take over: {e}"
            )));
        }
        match self.model.as_ref().map(|m| &m.engine) {
            Some(Engine::Cpu(p)) => job.run(p, &self.cpu).await,
            _ => Err(failed),
        }
    }

    #[cfg(not(feature = "webgpu"))]
    async fn retry_on_cpu<J: Job>(&mut self, _job: J, failed: EngineError) -> Result<J::Output, EngineError> {
        Err(failed)
    }

    fn simulate_gpu_loss(&mut self) -> Response {
        #[cfg(feature = "webgpu")]
        if let Some(gpu) = &self.gpu {
            gpu.lose_device();
            return Response::Done;
        }
        error("there is no GPU in use to lose")
    }
}

impl Engine {
    fn tokenizer(&self) -> Option<&TextTokenizer> {
        match self {
            Engine::Cpu(p) => p.tokenizer.as_ref(),
            #[cfg(feature = "webgpu")]
            Engine::Gpu(p) => p.tokenizer.as_ref(),
        }
    }

    fn pipeline_info(&self) -> PipelineInfo<'_> {
        match self {
            Engine::Cpu(p) => PipelineInfo {
                config: &p.model.config,
                heads: p.model.heads(),
            },
            #[cfg(feature = "webgpu")]
            Engine::Gpu(p) => PipelineInfo {
                config: &p.model.config,
                heads: p.model.heads(),
            },
        }
    }
}

struct PipelineInfo<'a> {
    config: &'a crate::engine::config::ModelConfig,
    heads: usize,
}

/// A request's files, read whole: every request but a model load takes them so.
fn whole(sources: Vec<Box<dyn Bytes>>) -> Vec<Vec<u8>> {
    sources.into_iter().map(Bytes::into_vec).collect()
}
