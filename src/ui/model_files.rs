use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use super::models::{LoadProgress, LoadUi, ModelCatalogue};
use super::worker_client::WorkerClient;
use crate::protocol::{HeadInfo, ModelInfo, Progress, Request, Response};

/// The status line once a model is in: what it is, where it runs, its labels, and how big
/// the worker's memory is with it loaded.
pub fn loaded_text(info: &ModelInfo) -> String {
    format!(
        "Loaded {} ({} layers × {} heads, hidden {}) on {}{}{}",
        info.architecture,
        info.layers,
        info.heads,
        info.hidden,
        info.backend,
        if info.labels.is_empty() {
            String::new()
        } else {
            format!(", labels: {}", info.labels.join(", "))
        },
        match info.memory_bytes {
            // Decimal megabytes, as the model's download size is shown.
            Some(b) => format!(" · worker memory {} MB", (b + 500_000) / 1_000_000),
            None => String::new(),
        }
    )
}

async fn read_buffer(file: &web_sys::File) -> Result<js_sys::ArrayBuffer, String> {
    JsFuture::from(file.array_buffer())
        .await
        .map_err(|e| format!("could not read {}: {e:?}", file.name()))?
        .dyn_into()
        .map_err(|_| format!("{} did not read as bytes", file.name()))
}

/// Loading a model: from the catalogue (site, hub or cache) or from local files (the user
/// picks config.json, *.safetensors, tokenizer.json, preprocessor_config.json). Both share
/// one status line, progress bar and error.
#[component]
pub fn ModelFiles(
    client: WorkerClient,
    set_model: WriteSignal<Option<ModelInfo>>,
    set_head: WriteSignal<Option<HeadInfo>>,
) -> impl IntoView {
    let (status, set_status) = signal("No model loaded.".to_string());
    let (error, set_error) = signal(None::<String>);
    let (busy, set_busy) = signal(false);
    let (progress, set_progress) = signal(None::<LoadProgress>);
    let ui = LoadUi {
        set_model,
        set_head,
        set_status,
        set_error,
        set_progress,
        busy,
        set_busy,
    };
    let catalogue_client = client.clone();

    let on_pick = move |ev: leptos::ev::Event| {
        let input: web_sys::HtmlInputElement = event_target(&ev);
        let Some(list) = input.files() else { return };
        let files: Vec<web_sys::File> = (0..list.length()).filter_map(|i| list.get(i)).collect();
        if files.is_empty() {
            return;
        }
        let client = client.clone();
        set_busy.set(true);
        set_status.set(format!("Loading {} files…", files.len()));
        spawn_local(async move {
            let mut names = Vec::new();
            let mut buffers = Vec::new();
            for f in &files {
                match read_buffer(f).await {
                    Ok(b) => {
                        names.push(f.name());
                        buffers.push(b);
                    }
                    Err(e) => {
                        set_error.set(Some(e));
                        set_busy.set(false);
                        return;
                    }
                }
            }
            let source = "local files".to_string();
            let on_progress = move |p: Progress| {
                set_status.set(format!("Loading: {}…", p.stage));
                set_progress.set(Some(LoadProgress::Worker(p)));
            };
            let answer = client
                .call_with_progress(Request::LoadModel { source, names }, buffers, on_progress)
                .await;
            set_progress.set(None);
            match answer {
                Ok(Response::ModelLoaded(info)) => {
                    set_error.set(None);
                    set_status.set(loaded_text(&info));
                    set_model.set(Some(info));
                }
                Ok(other) => set_error.set(Some(format!("unexpected answer: {other:?}"))),
                // The model that was loaded before stays in use.
                Err(message) => set_error.set(Some(message)),
            }
            set_busy.set(false);
        });
    };

    view! {
        <div class="model-files">
            <ModelCatalogue client=catalogue_client ui=ui />
            <label>
                "Open a model from local files (config.json, *.safetensors, and tokenizer.json for text "
                "or preprocessor_config.json for images): "
                <input type="file" multiple data-testid="model-files" on:change=on_pick disabled=busy />
            </label>
            <p data-testid="model-status" aria-live="polite">{status}</p>
            {move || {
                progress
                    .get()
                    .map(|p| match p {
                        LoadProgress::Worker(p) => view! {
                            <progress
                                data-testid="load-progress"
                                data-stage=p.stage.clone()
                                max=p.total.max(1)
                                value=p.done
                                aria-label=format!("Loading the model: {}", p.stage)
                            ></progress>
                        }
                        .into_any(),
                        // Bytes arriving: this file and all files, as a bar and as text.
                        LoadProgress::Download(d) => view! {
                            <div
                                class="download-progress"
                                data-testid="load-progress"
                                data-stage="download"
                                data-file=d.file.clone()
                                data-done=d.done
                                data-all-done=d.all_done
                                data-all-total=d.all_total
                            >
                                <progress
                                    max=d.all_total.max(1)
                                    value=d.all_done
                                    aria-label="Downloading the model"
                                ></progress>
                                <span>{d.text()}</span>
                            </div>
                        }
                        .into_any(),
                    })
            }}
            {move || error.get().map(|m| view! { <p class="error" role="alert" data-testid="error">{m}</p> })}
        </div>
    }
}
