//! What the two fine-tuning panels (text and images) share: the state of a training run and
//! its handlers (start, progress, finish, cancel), the head's export, import and keeping in
//! the browser, the progress line and the settings' number fields.

use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use super::worker_client::WorkerClient;
use crate::engine::finetune::{EpochReport, TrainConfig};
use crate::protocol::{HeadInfo, Progress, Request, Response, TrainSummary};

pub(super) fn now_ms() -> f64 {
    js_sys::Date::now()
}

pub(super) async fn read_bytes(file: &web_sys::File) -> Result<js_sys::ArrayBuffer, String> {
    JsFuture::from(file.array_buffer())
        .await
        .map_err(|e| format!("could not read {}: {e:?}", file.name()))?
        .dyn_into()
        .map_err(|_| format!("{} did not read as bytes", file.name()))
}

/// Offers `bytes` as a download named `name`.
pub(super) fn download(name: &str, bytes: &[u8], mime: &str) -> Result<(), String> {
    let array = js_sys::Uint8Array::from(bytes);
    let parts = js_sys::Array::of1(&array);
    let opts = web_sys::BlobPropertyBag::new();
    opts.set_type(mime);
    let blob =
        web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &opts).map_err(|e| format!("{e:?}"))?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(|e| format!("{e:?}"))?;
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?;
    let a: web_sys::HtmlAnchorElement = document
        .create_element("a")
        .map_err(|e| format!("{e:?}"))?
        .unchecked_into();
    a.set_href(&url);
    a.set_download(name);
    a.click();
    let _ = web_sys::Url::revoke_object_url(&url);
    Ok(())
}

/// One kind of head (text or image): how the worker exports and imports it, the files it
/// downloads as, and where the browser keeps it between visits (base64 of its safetensors).
#[derive(Clone, Copy)]
pub(super) struct HeadKind {
    pub export: fn() -> Request,
    pub import: fn(String) -> Request,
    /// The download's base name ("head" gives head.safetensors and head.json).
    pub file: &'static str,
    /// The localStorage key.
    pub key: &'static str,
    /// How messages name it ("head", "image head").
    pub what: &'static str,
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok()?
}

impl HeadKind {
    /// Keeps the head in the browser; a full storage only costs the reload convenience.
    fn store(&self, bytes: &[u8]) -> Result<(), String> {
        let window = web_sys::window().ok_or("no window")?;
        let latin1: String = bytes.iter().map(|&b| b as char).collect();
        let encoded = window.btoa(&latin1).map_err(|e| format!("{e:?}"))?;
        storage()
            .ok_or("this browser has no local storage")?
            .set_item(self.key, &encoded)
            .map_err(|_| {
                format!(
                    "the browser's storage is full; export the {} to keep it",
                    self.what
                )
            })
    }

    fn stored(&self) -> Option<Vec<u8>> {
        let text = storage()?.get_item(self.key).ok()??;
        let decoded = web_sys::window()?.atob(&text).ok()?;
        Some(decoded.chars().map(|c| c as u8).collect())
    }

    /// Installs the head kept in this browser, if any (called once at start).
    pub fn restore(self, client: WorkerClient, set_head: WriteSignal<Option<HeadInfo>>) {
        let Some(bytes) = self.stored() else { return };
        spawn_local(async move {
            let buffer = js_sys::Uint8Array::from(bytes.as_slice()).buffer();
            let request = (self.import)(format!("the {} saved in this browser", self.what));
            if let Ok(Response::HeadLoaded(info)) = client.call_with_files(request, vec![buffer]).await {
                set_head.set(Some(info));
            }
        });
    }

    /// After a training: the worker's new head, kept in the browser.
    async fn keep(self, client: &WorkerClient, set_error: WriteSignal<Option<String>>) {
        match client.call((self.export)()).await {
            Ok(Response::HeadFile { safetensors, .. }) => {
                if let Err(m) = self.store(&safetensors) {
                    set_error.set(Some(m));
                }
            }
            Ok(_) => {}
            Err(m) => set_error.set(Some(m)),
        }
    }

    /// The export button's handler: the head as `<file>.safetensors` and `<file>.json`.
    pub fn export_handler(
        self,
        client: WorkerClient,
        set_error: WriteSignal<Option<String>>,
    ) -> impl Fn(leptos::ev::MouseEvent) + Clone + 'static {
        move |_| {
            let client = client.clone();
            spawn_local(async move {
                match client.call((self.export)()).await {
                    Ok(Response::HeadFile { safetensors, json }) => {
                        let file = self.file;
                        let r = download(
                            &format!("{file}.safetensors"),
                            &safetensors,
                            "application/octet-stream",
                        )
                        .and_then(|()| {
                            download(&format!("{file}.json"), json.as_bytes(), "application/json")
                        });
                        if let Err(m) = r {
                            set_error.set(Some(m));
                        }
                    }
                    Ok(other) => set_error.set(Some(format!("unexpected answer: {other:?}"))),
                    Err(m) => set_error.set(Some(m)),
                }
            });
        }
    }

    /// The import field's handler: installs the picked head file and keeps it in the
    /// browser; a refused file leaves the head installed before.
    pub fn import_handler(
        self,
        client: WorkerClient,
        set_head: WriteSignal<Option<HeadInfo>>,
        set_error: WriteSignal<Option<String>>,
    ) -> impl Fn(leptos::ev::Event) + Clone + 'static {
        move |ev| {
            let input: web_sys::HtmlInputElement = event_target(&ev);
            let Some(file) = input.files().and_then(|f| f.get(0)) else {
                return;
            };
            // The same file can be picked again (after a refusal, say).
            input.set_value("");
            let client = client.clone();
            spawn_local(async move {
                let bytes = match read_bytes(&file).await {
                    Ok(b) => b,
                    Err(e) => return set_error.set(Some(e)),
                };
                let copy = js_sys::Uint8Array::new(&bytes).to_vec();
                match client
                    .call_with_files((self.import)(file.name()), vec![bytes])
                    .await
                {
                    Ok(Response::HeadLoaded(info)) => {
                        set_error.set(self.store(&copy).err());
                        set_head.set(Some(info));
                    }
                    Ok(other) => set_error.set(Some(format!("unexpected answer: {other:?}"))),
                    Err(m) => set_error.set(Some(m)),
                }
            });
        }
    }
}

/// A panel's training run, as signals (all `Copy`).
#[derive(Clone, Copy)]
pub(super) struct Training {
    pub busy: ReadSignal<bool>,
    set_busy: WriteSignal<bool>,
    pub progress: ReadSignal<Option<(Progress, f64)>>,
    set_progress: WriteSignal<Option<(Progress, f64)>>,
    pub started: ReadSignal<f64>,
    set_started: WriteSignal<f64>,
    pub history: ReadSignal<Vec<EpochReport>>,
    set_history: WriteSignal<Vec<EpochReport>>,
    pub summary: ReadSignal<Option<TrainSummary>>,
    set_summary: WriteSignal<Option<TrainSummary>>,
    pub error: ReadSignal<Option<String>>,
    pub set_error: WriteSignal<Option<String>>,
    pub config: RwSignal<TrainConfig>,
}

impl Training {
    pub fn new() -> Self {
        let (busy, set_busy) = signal(false);
        let (progress, set_progress) = signal(None);
        let (started, set_started) = signal(0f64);
        let (history, set_history) = signal(Vec::new());
        let (summary, set_summary) = signal(None);
        let (error, set_error) = signal(None);
        Self {
            busy,
            set_busy,
            progress,
            set_progress,
            started,
            set_started,
            history,
            set_history,
            summary,
            set_summary,
            error,
            set_error,
            config: RwSignal::new(TrainConfig::default()),
        }
    }

    /// A run starts: busy, and the last run's curves, metrics and message cleared.
    pub fn begin(self) {
        self.set_busy.set(true);
        self.set_error.set(None);
        self.set_history.set(Vec::new());
        self.set_summary.set(None);
        self.set_started.set(now_ms());
    }

    /// Where the worker's progress goes: the progress line, and each epoch to the curves.
    pub fn on_progress(self) -> impl Fn(Progress) + 'static {
        move |p: Progress| {
            if let Some(e) = &p.epoch {
                self.set_history.update(|h| h.push(e.clone()));
            }
            self.set_progress.set(Some((p, now_ms())));
        }
    }

    /// Sends the training request and shows its outcome; a trained head is kept in the
    /// browser as `kind` and announced through `set_head`. A failure (or a cancel before the
    /// first epoch ended) only shows its message: the head from before stays.
    pub async fn run(
        self,
        client: WorkerClient,
        request: Request,
        files: Vec<js_sys::ArrayBuffer>,
        kind: HeadKind,
        set_head: WriteSignal<Option<HeadInfo>>,
    ) {
        match client
            .call_with_progress(request, files, self.on_progress())
            .await
        {
            Ok(Response::Trained(s)) => {
                self.set_history.set(s.history.clone());
                let info = s.head.clone();
                self.set_summary.set(Some(*s));
                kind.keep(&client, self.set_error).await;
                set_head.set(Some(info));
            }
            Ok(other) => self.set_error.set(Some(format!("unexpected answer: {other:?}"))),
            Err(m) => self.set_error.set(Some(m)),
        }
        self.end();
    }

    /// The run is over (or never got going).
    pub fn end(self) {
        self.set_progress.set(None);
        self.set_busy.set(false);
    }
}

/// The Cancel button's handler: stops the worker's embedding or training (the worker answers
/// it at once; the training's own answer then says what was kept).
pub(super) fn cancel_handler(client: WorkerClient) -> impl Fn(leptos::ev::MouseEvent) + Clone + 'static {
    move |_| {
        let client = client.clone();
        spawn_local(async move {
            let _ = client.call(Request::CancelTraining).await;
        });
    }
}

/// The progress line while embedding ("`unit`s" per second, time left) or training (epochs).
#[component]
pub(super) fn TrainProgress(training: Training, unit: &'static str) -> impl IntoView {
    move || {
        training.progress.get().map(|(p, at)| {
            let secs = ((at - training.started.get()) / 1000.0).max(1e-3);
            let note = match p.stage.as_str() {
                "embedding" => {
                    let rate = p.done as f64 / secs;
                    let eta = if rate > 0.0 {
                        (p.total - p.done) as f64 / rate
                    } else {
                        f64::NAN
                    };
                    format!(
                        "Embedding {}/{} {unit}s ({rate:.0} {}/s, about {eta:.0} s left)",
                        p.done,
                        p.total,
                        if unit == "text" { "rows" } else { "images" }
                    )
                }
                "training" => format!(
                    "Epoch {}/{} (stops early when validation loss stops improving)",
                    p.done, p.total
                ),
                other => other.to_string(),
            };
            view! {
                <div>
                    <progress data-testid="train-progress" data-stage=p.stage.clone() max=p.total.max(1) value=p.done></progress>
                    <span>{note}</span>
                </div>
            }
        })
    }
}

/// One number field of the training settings.
pub(super) fn number_field(
    config: RwSignal<TrainConfig>,
    label: &'static str,
    get: fn(&TrainConfig) -> f64,
    put: fn(&mut TrainConfig, f64),
) -> impl IntoView {
    view! {
        <label>
            {label}
            <input
                type="number"
                step="any"
                prop:value=move || get(&config.get()).to_string()
                on:change=move |ev| {
                    if let Ok(v) = event_target_value(&ev).parse::<f64>() {
                        config.update(|c| put(c, v));
                    }
                }
            />
        </label>
    }
}
