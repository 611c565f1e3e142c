//! Fine-tuning on images: name a class and drop or pick its images (or a zip of class
//! folders), or pick a folder whose sub-folders are the classes; a head is trained on the
//! loaded ViT's `[CLS]` embeddings in the worker, with the same loop, curves and metrics as
//! for text. The head then answers next to the model's own classifier in the image panel,
//! and is kept in the browser (localStorage) so a reload keeps it.

use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsValue;

use super::finetune::{download, read_bytes, Curves, Results};
use super::worker_client::WorkerClient;
use crate::engine::finetune::{EpochReport, TrainConfig};
use crate::protocol::{HeadInfo, ModelInfo, Progress, Request, Response, TrainSummary};

/// Where the image head lives between visits (base64 of its head.safetensors), apart from
/// the text head.
const STORED_IMAGE_HEAD: &str = "webformer.image-head";

/// A class and the files added to it. The files stay here (not only in the worker), so a
/// failed or cancelled training loses nothing the user added.
#[derive(Clone)]
struct Class {
    name: String,
    files: Vec<web_sys::File>,
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok()?
}

fn store(bytes: &[u8]) -> Result<(), String> {
    let window = web_sys::window().ok_or("no window")?;
    let latin1: String = bytes.iter().map(|&b| b as char).collect();
    let encoded = window.btoa(&latin1).map_err(|e| format!("{e:?}"))?;
    storage()
        .ok_or("this browser has no local storage")?
        .set_item(STORED_IMAGE_HEAD, &encoded)
        .map_err(|_| "the browser's storage is full; export the image head to keep it".to_string())
}

fn stored() -> Option<Vec<u8>> {
    let text = storage()?.get_item(STORED_IMAGE_HEAD).ok()??;
    let decoded = web_sys::window()?.atob(&text).ok()?;
    Some(decoded.chars().map(|c| c as u8).collect())
}

/// The path a folder pick gives a file ("photos/shoes/a.png"), or "" for a single file.
fn relative_path(file: &web_sys::File) -> String {
    js_sys::Reflect::get(file, &JsValue::from_str("webkitRelativePath"))
        .ok()
        .and_then(|v| v.as_string())
        .unwrap_or_default()
}

/// The class of a file picked inside a folder: the folder it is in, below the picked one
/// ("photos/shoes/a.png" → "shoes"); files directly in the picked folder have none.
fn folder_class(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    (parts.len() >= 3).then(|| parts[parts.len() - 2].to_string())
}

fn is_zip_name(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".zip")
}

/// Puts each file in its class: its folder's (folder picks), else `typed`. A zip may go
/// without a class (its folders are the classes).
fn add_files(
    classes: RwSignal<Vec<Class>, LocalStorage>,
    files: Vec<web_sys::File>,
    typed: &str,
) -> Result<usize, String> {
    let typed = typed.trim();
    let mut added = 0;
    let mut unplaced = Vec::new();
    for f in files {
        let path = relative_path(&f);
        let class = match folder_class(&path) {
            Some(c) => c,
            None if !typed.is_empty() => typed.to_string(),
            None if is_zip_name(&f.name()) => String::new(),
            None => {
                unplaced.push(f.name());
                continue;
            }
        };
        classes.update(|cs| match cs.iter_mut().find(|c| c.name == class) {
            Some(c) => c.files.push(f),
            None => cs.push(Class {
                name: class,
                files: vec![f],
            }),
        });
        added += 1;
    }
    if unplaced.is_empty() {
        Ok(added)
    } else {
        Err(format!(
            "name the class first, then add its images ({} not added: {})",
            unplaced.len(),
            unplaced.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
        ))
    }
}

/// Restores the image head kept in the browser, if any.
fn restore(client: WorkerClient, set_head: WriteSignal<Option<HeadInfo>>) {
    let Some(bytes) = stored() else { return };
    spawn_local(async move {
        let buffer = js_sys::Uint8Array::from(bytes.as_slice()).buffer();
        let request = Request::ImportHead {
            name: "the image head saved in this browser".into(),
        };
        if let Ok(Response::HeadLoaded(info)) = client.call_with_files(request, vec![buffer]).await {
            set_head.set(Some(info));
        }
    });
}

#[component]
pub fn ImageFineTune(client: WorkerClient, model: ReadSignal<Option<ModelInfo>>) -> impl IntoView {
    let classes = RwSignal::new_local(Vec::<Class>::new());
    let (class_name, set_class_name) = signal(String::new());
    let (error, set_error) = signal(None::<String>);
    let (busy, set_busy) = signal(false);
    let (progress, set_progress) = signal(None::<(Progress, f64)>);
    let (started, set_started) = signal(0f64);
    let (history, set_history) = signal(Vec::<EpochReport>::new());
    let (summary, set_summary) = signal(None::<TrainSummary>);
    let (head, set_head) = signal(None::<HeadInfo>);
    let config = RwSignal::new(TrainConfig::default());
    restore(client.clone(), set_head);

    let take = move |files: Vec<web_sys::File>| {
        if files.is_empty() {
            return;
        }
        match add_files(classes, files, &class_name.get_untracked()) {
            Ok(_) => set_error.set(None),
            Err(m) => set_error.set(Some(m)),
        }
    };
    let list = |files: Option<web_sys::FileList>| -> Vec<web_sys::File> {
        files
            .map(|l| (0..l.length()).filter_map(|i| l.get(i)).collect())
            .unwrap_or_default()
    };
    let on_pick = move |ev: leptos::ev::Event| {
        let input: web_sys::HtmlInputElement = event_target(&ev);
        take(list(input.files()));
        // The same files can be picked again (for another class).
        input.set_value("");
    };
    let on_drop = move |ev: leptos::ev::DragEvent| {
        ev.prevent_default();
        take(list(ev.data_transfer().and_then(|d| d.files())));
    };

    let start = {
        let client = client.clone();
        move |_| {
            let client = client.clone();
            let chosen = classes.get_untracked();
            set_busy.set(true);
            set_error.set(None);
            set_history.set(Vec::new());
            set_summary.set(None);
            set_started.set(now_ms());
            spawn_local(async move {
                let (mut names, mut class_of, mut buffers) = (Vec::new(), Vec::new(), Vec::new());
                for c in &chosen {
                    for f in &c.files {
                        match read_bytes(f).await {
                            Ok(b) => {
                                let path = relative_path(f);
                                names.push(if path.is_empty() { f.name() } else { path });
                                class_of.push(c.name.clone());
                                buffers.push(b);
                            }
                            Err(e) => {
                                set_error.set(Some(e));
                                set_busy.set(false);
                                return;
                            }
                        }
                    }
                }
                let request = Request::TrainImages {
                    classes: class_of,
                    names,
                    config: config.get_untracked(),
                };
                let on_progress = move |p: Progress| {
                    if let Some(e) = &p.epoch {
                        set_history.update(|h| h.push(e.clone()));
                    }
                    set_progress.set(Some((p, now_ms())));
                };
                match client.call_with_progress(request, buffers, on_progress).await {
                    Ok(Response::Trained(s)) => {
                        set_history.set(s.history.clone());
                        let info = s.head.clone();
                        set_summary.set(Some(*s));
                        match client.call(Request::ExportImageHead).await {
                            Ok(Response::HeadFile { safetensors, .. }) => {
                                if let Err(m) = store(&safetensors) {
                                    set_error.set(Some(m));
                                }
                            }
                            Ok(_) => {}
                            Err(m) => set_error.set(Some(m)),
                        }
                        set_head.set(Some(info));
                    }
                    Ok(other) => set_error.set(Some(format!("unexpected answer: {other:?}"))),
                    Err(m) => set_error.set(Some(m)),
                }
                set_progress.set(None);
                set_busy.set(false);
            });
        }
    };
    let cancel = {
        let client = client.clone();
        move |_| {
            let client = client.clone();
            spawn_local(async move {
                let _ = client.call(Request::CancelTraining).await;
            });
        }
    };
    let export = {
        let client = client.clone();
        move |_| {
            let client = client.clone();
            spawn_local(async move {
                match client.call(Request::ExportImageHead).await {
                    Ok(Response::HeadFile { safetensors, json }) => {
                        let r = download("image-head.safetensors", &safetensors, "application/octet-stream")
                            .and_then(|()| download("image-head.json", json.as_bytes(), "application/json"));
                        if let Err(m) = r {
                            set_error.set(Some(m));
                        }
                    }
                    Ok(other) => set_error.set(Some(format!("unexpected answer: {other:?}"))),
                    Err(m) => set_error.set(Some(m)),
                }
            });
        }
    };
    let number = move |label: &'static str, get: fn(&TrainConfig) -> f64, put: fn(&mut TrainConfig, f64)| {
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
    };
    let not_vit = move || model.get().is_none_or(|m| m.modality != "image");

    view! {
        <section aria-labelledby="image-finetune-title" data-testid="image-finetune">
            <h2 id="image-finetune-title">"Teach it your own classes"</h2>
            <p class="hint">
                "Train a small head on the loaded ViT's image embeddings (the [CLS] token its own classifier reads), "
                "here in the browser. Name a class and add its images (or a zip with one folder per class), "
                "or pick a folder whose sub-folders are the classes. Files that are not images are skipped and named."
            </p>
            <p data-testid="image-finetune-model">
                {move || match model.get() {
                    Some(m) if m.modality == "image" => format!("Image model: {} ({} wide) on {}", m.source, m.hidden, m.backend),
                    Some(m) => format!("The loaded model ({}) takes text; load an image model (a ViT) to train on images.", m.source),
                    None => "No image model loaded yet.".to_string(),
                }}
            </p>
            <div class="columns">
                <label>
                    "Class name "
                    <input
                        type="text"
                        data-testid="image-class-name"
                        placeholder="e.g. sneakers"
                        prop:value=move || class_name.get()
                        on:input=move |ev| set_class_name.set(event_target_value(&ev))
                    />
                </label>
            </div>
            <div class="dropzone" on:dragover=|ev: leptos::ev::DragEvent| ev.prevent_default() on:drop=on_drop>
                <label>
                    "Drop or pick this class's images (or a zip of class folders): "
                    <input type="file" multiple accept="image/*,.zip,application/zip" data-testid="image-class-input" on:change=on_pick />
                </label>
                <label>
                    "Or pick a folder with one sub-folder per class: "
                    <input type="file" multiple prop:webkitdirectory=true data-testid="image-folder-input" on:change=on_pick />
                </label>
            </div>
            <table class="preview" data-testid="image-classes">
                <thead><tr><th scope="col">"class"</th><th scope="col">"files"</th><th></th></tr></thead>
                <tbody>
                    {move || {
                        classes
                            .get()
                            .into_iter()
                            .map(|c| {
                                let name = c.name.clone();
                                let shown = if c.name.is_empty() { "(zip: its folders are the classes)".to_string() } else { c.name.clone() };
                                view! {
                                    <tr data-testid="image-class" data-class=c.name.clone() data-count=c.files.len().to_string()>
                                        <th scope="row">{shown}</th>
                                        <td>{c.files.len()}</td>
                                        <td>
                                            <button
                                                class="secondary"
                                                aria-label=format!("remove class {}", c.name)
                                                disabled=move || busy.get()
                                                on:click=move |_| classes.update(|cs| cs.retain(|x| x.name != name))
                                            >
                                                "Remove"
                                            </button>
                                        </td>
                                    </tr>
                                }
                            })
                            .collect_view()
                    }}
                </tbody>
            </table>
            {move || error.get().map(|m| view! { <p class="error" role="alert" data-testid="error">{m}</p> })}
            <details class="image-advanced">
                <summary>"Advanced"</summary>
                {number("Epochs (image head) ", |c| c.epochs as f64, |c, v| c.epochs = v.max(1.0) as usize)}
                {number("Learning rate (image head) ", |c| c.lr, |c, v| c.lr = v)}
                {number("Weight decay (image head) ", |c| c.weight_decay, |c, v| c.weight_decay = v)}
                {number("Batch size (image head) ", |c| c.batch_size as f64, |c, v| c.batch_size = v.max(1.0) as usize)}
                {number("Hidden layer width, 0 = linear (image head) ", |c| c.hidden.unwrap_or(0) as f64, |c, v| {
                    c.hidden = (v >= 1.0).then_some(v as usize)
                })}
                {number("Early-stopping patience in epochs (image head) ", |c| c.patience as f64, |c, v| c.patience = v.max(1.0) as usize)}
            </details>
            <button
                data-testid="image-train-start"
                on:click=start
                disabled=move || busy.get() || classes.get().is_empty() || not_vit()
            >
                "Train on these images"
            </button>
            <button data-testid="image-train-cancel" on:click=cancel disabled=move || !busy.get()>
                "Cancel"
            </button>
            {move || {
                progress
                    .get()
                    .map(|(p, at)| {
                        let secs = ((at - started.get()) / 1000.0).max(1e-3);
                        let note = match p.stage.as_str() {
                            "embedding" => {
                                let rate = p.done as f64 / secs;
                                let eta = if rate > 0.0 { (p.total - p.done) as f64 / rate } else { f64::NAN };
                                format!("Embedding {}/{} images ({rate:.0} images/s, about {eta:.0} s left)", p.done, p.total)
                            }
                            "training" => format!("Epoch {}/{} (stops early when validation loss stops improving)", p.done, p.total),
                            other => other.to_string(),
                        };
                        view! {
                            <div>
                                <progress data-testid="train-progress" data-stage=p.stage.clone() max=p.total.max(1) value=p.done></progress>
                                <span>{note}</span>
                            </div>
                        }
                    })
            }}
            {move || (!history.get().is_empty()).then(|| view! { <Curves history=history /> })}
            {move || summary.get().map(|s| view! { <Results summary=s /> })}
            <div class="head-io">
                <p data-testid="image-head-status">
                    {move || match head.get() {
                        Some(h) => format!("Trained image head: {} ({}); its answers show next to the model's above.", h.labels.join(", "), h.encoder),
                        None => "No trained image head yet.".to_string(),
                    }}
                </p>
                <button data-testid="image-head-export" on:click=export disabled=move || head.get().is_none()>
                    "Export image head (image-head.safetensors + .json)"
                </button>
            </div>
        </section>
    }
}
