//! Fine-tuning on images: name a class and drop or pick its images (or a zip of class
//! folders), or drop or pick folders (a class per folder, or a parent of class folders); a
//! head is trained on the loaded ViT's `[CLS]` embeddings in the worker, with the same loop,
//! curves and metrics as for text. The head then answers next to the model's own classifier
//! in the image panel, and is kept in the browser (localStorage) so a reload keeps it.

use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use super::finetune::{Curves, Results};
use super::training::{cancel_handler, number_field, read_bytes, HeadKind, TrainProgress, Training};
use super::worker_client::WorkerClient;
use crate::engine::finetune::TrainConfig;
use crate::engine::image_dataset::place_files;
use crate::protocol::{HeadInfo, ModelInfo, Request};

/// The image head: exported as image-head.safetensors, kept in the browser apart from the
/// text head (base64 of its safetensors).
const IMAGE_HEAD: HeadKind = HeadKind {
    export: || Request::ExportImageHead,
    import: |name| Request::ImportImageHead { name },
    file: "image-head",
    key: "webformer.image-head",
    what: "image head",
};

/// A class and the files added to it, each with its path (its name inside the folder it
/// came in, or its file name). The files stay here (not only in the worker), so a failed or
/// cancelled training loses nothing the user added.
#[derive(Clone)]
struct Class {
    name: String,
    files: Vec<(String, web_sys::File)>,
}

/// A picked file's path: "photos/shoes/a.png" from a folder pick, else its name.
fn picked_path(file: &web_sys::File) -> String {
    let path = js_sys::Reflect::get(file, &JsValue::from_str("webkitRelativePath"))
        .ok()
        .and_then(|v| v.as_string())
        .unwrap_or_default();
    if path.is_empty() {
        file.name()
    } else {
        path
    }
}

/// Puts each file in its class (see [`place_files`]: its folder's, else the typed one).
fn add_files(
    classes: RwSignal<Vec<Class>, LocalStorage>,
    files: Vec<(String, web_sys::File)>,
    typed: &str,
) -> Result<usize, String> {
    let placed = place_files(files, typed);
    let mut added = 0;
    classes.update(|cs| {
        for (class, files) in placed.classes {
            added += files.len();
            match cs.iter_mut().find(|c| c.name == class) {
                Some(c) => c.files.extend(files),
                None => cs.push(Class { name: class, files }),
            }
        }
    });
    if placed.unplaced.is_empty() {
        Ok(added)
    } else {
        Err(format!(
            "name the class first, then add its images ({} not added: {})",
            placed.unplaced.len(),
            placed
                .unplaced
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

/// A `Promise` from a call that takes a success and an error callback.
async fn callback(call: impl FnOnce(&js_sys::Function, &js_sys::Function)) -> Result<JsValue, JsValue> {
    let mut call = Some(call);
    let promise = js_sys::Promise::new(&mut |resolve, reject| {
        if let Some(call) = call.take() {
            call(&resolve, &reject);
        }
    });
    JsFuture::from(promise).await
}

/// Every file under the dropped entries (folders read to the bottom), with its path from
/// the dropped item ("shoes/a.png", "photos/shoes/a.png"), sorted by path.
async fn read_entries(
    entries: Vec<web_sys::FileSystemEntry>,
) -> Result<Vec<(String, web_sys::File)>, String> {
    let mut out = Vec::new();
    let mut stack = entries;
    while let Some(entry) = stack.pop() {
        let path = entry.full_path().trim_start_matches('/').to_string();
        let failed = |e: JsValue| format!("could not read the dropped {path}: {e:?}");
        if entry.is_directory() {
            let reader = entry
                .unchecked_ref::<web_sys::FileSystemDirectoryEntry>()
                .create_reader();
            // readEntries gives a directory's entries in batches, then an empty one.
            loop {
                let batch = callback(|ok, err| {
                    if let Err(e) = reader.read_entries_with_callback_and_callback(ok, err) {
                        let _ = err.call1(&JsValue::NULL, &e);
                    }
                })
                .await
                .map_err(failed)?;
                let batch: js_sys::Array = batch.unchecked_into();
                if batch.length() == 0 {
                    break;
                }
                stack.extend(
                    batch
                        .iter()
                        .map(|e| e.unchecked_into::<web_sys::FileSystemEntry>()),
                );
            }
        } else if entry.is_file() {
            let file_entry = entry.unchecked_ref::<web_sys::FileSystemFileEntry>();
            let file = callback(|ok, err| file_entry.file_with_callback_and_callback(ok, err))
                .await
                .map_err(failed)?;
            out.push((path, file.unchecked_into::<web_sys::File>()));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

#[component]
pub fn ImageFineTune(client: WorkerClient, model: ReadSignal<Option<ModelInfo>>) -> impl IntoView {
    let classes = RwSignal::new_local(Vec::<Class>::new());
    let (class_name, set_class_name) = signal(String::new());
    let training = Training::new();
    let Training {
        busy,
        history,
        summary,
        error,
        set_error,
        config,
        ..
    } = training;
    let (head, set_head) = signal(None::<HeadInfo>);
    IMAGE_HEAD.restore(client.clone(), set_head);

    let take = move |files: Vec<(String, web_sys::File)>| {
        if files.is_empty() {
            return;
        }
        set_error.set(add_files(classes, files, &class_name.get_untracked()).err());
    };
    let list = |files: Option<web_sys::FileList>| -> Vec<(String, web_sys::File)> {
        files
            .map(|l| (0..l.length()).filter_map(|i| l.get(i)).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .map(|f| (picked_path(&f), f))
            .collect()
    };
    let on_pick = move |ev: leptos::ev::Event| {
        let input: web_sys::HtmlInputElement = event_target(&ev);
        take(list(input.files()));
        // The same files can be picked again (for another class).
        input.set_value("");
    };
    let on_drop = move |ev: leptos::ev::DragEvent| {
        ev.prevent_default();
        let Some(dt) = ev.data_transfer() else { return };
        // The entries can only be had during the event; folders are read after it.
        let items = dt.items();
        let entries: Vec<web_sys::FileSystemEntry> = (0..items.length())
            .filter_map(|i| items.get(i))
            .filter(|item| item.kind() == "file")
            .filter_map(|item| item.webkit_get_as_entry().ok().flatten())
            .collect();
        if !entries.iter().any(|e| e.is_directory()) {
            return take(list(dt.files()));
        }
        spawn_local(async move {
            match read_entries(entries).await {
                Ok(files) => take(files),
                Err(m) => set_error.set(Some(m)),
            }
        });
    };

    let start = {
        let client = client.clone();
        move |_| {
            let client = client.clone();
            let chosen = classes.get_untracked();
            training.begin();
            spawn_local(async move {
                let (mut names, mut class_of, mut buffers) = (Vec::new(), Vec::new(), Vec::new());
                for c in &chosen {
                    for (path, f) in &c.files {
                        match read_bytes(f).await {
                            Ok(b) => {
                                names.push(path.clone());
                                class_of.push(c.name.clone());
                                buffers.push(b);
                            }
                            Err(e) => {
                                set_error.set(Some(e));
                                training.end();
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
                training.run(client, request, buffers, IMAGE_HEAD, set_head).await;
            });
        }
    };
    let cancel = cancel_handler(client.clone());
    let export = IMAGE_HEAD.export_handler(client.clone(), set_error);
    let import = IMAGE_HEAD.import_handler(client, set_head, set_error);
    let number = move |label: &'static str, get: fn(&TrainConfig) -> f64, put: fn(&mut TrainConfig, f64)| {
        number_field(config, label, get, put)
    };
    let not_vit = move || model.get().is_none_or(|m| m.modality != "image");

    view! {
        <section aria-labelledby="image-finetune-title" data-testid="image-finetune">
            <h2 id="image-finetune-title">"Teach it your own classes"</h2>
            <p class="hint">
                "Train a small head on the loaded ViT's image embeddings (the [CLS] token its own classifier reads), "
                "here in the browser. Name a class and add its images (or a zip with one folder per class), "
                "or drop or pick folders: one folder per class, or a folder whose sub-folders are the classes "
                "(a file's class is the folder it is in). Files that are not images are skipped and named."
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
                    "Drop this class's images, class folders or a zip of class folders here, or pick images: "
                    <input type="file" multiple accept="image/*,.zip,application/zip" data-testid="image-class-input" on:change=on_pick />
                </label>
                <label>
                    "Or pick a folder (one sub-folder per class): "
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
            <TrainProgress training=training unit="image" />
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
                <label>
                    "Import an image head: "
                    <input type="file" accept=".safetensors" data-testid="image-head-import" on:change=import />
                </label>
            </div>
        </section>
    }
}
