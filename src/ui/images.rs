//! Image classification: drop, paste or pick images; each gets a preview and its top-5
//! classes with probability bars, and "Show attention" opens the attention explorer on it
//! (with the [CLS] overlay on the picture). The model (a ViT) is loaded above the tabs.

use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use super::worker_client::WorkerClient;
use crate::protocol::{ImageResult, ModelInfo, Request, Response};

const TOP: usize = 5;

/// One classified image with the object URL of its preview.
#[derive(Clone)]
struct Shown {
    result: ImageResult,
    preview: String,
    /// Kept to run the image again with its attention maps when asked.
    file: web_sys::File,
}

/// Axis labels for a ViT's tokens: `[CLS]`, then the patches by row and column.
fn patch_tokens(n: usize) -> Vec<String> {
    let side = ((n.max(1) - 1) as f64).sqrt().round().max(1.0) as usize;
    std::iter::once("[CLS]".to_string())
        .chain((0..n.saturating_sub(1)).map(|i| format!("r{}c{}", i / side + 1, i % side + 1)))
        .collect()
}

async fn read_bytes(file: &web_sys::File) -> Result<js_sys::ArrayBuffer, String> {
    JsFuture::from(file.array_buffer())
        .await
        .map_err(|e| format!("could not read {}: {e:?}", file.name()))?
        .dyn_into()
        .map_err(|_| format!("{} did not read as bytes", file.name()))
}

/// The top `TOP` (label, probability) pairs, best first.
fn top(result: &ImageResult) -> Vec<(String, f32)> {
    let mut pairs: Vec<(String, f32)> = result
        .labels
        .iter()
        .cloned()
        .zip(result.probs.iter().copied())
        .collect();
    pairs.sort_by(|a, b| b.1.total_cmp(&a.1));
    pairs.truncate(TOP);
    pairs
}

/// The trained image head's answer (its top classes), next to the model's own.
fn head_result(r: &ImageResult) -> Option<impl IntoView> {
    let h = r.head.as_ref()?;
    let probs = serde_json::to_string(&h.probs).unwrap_or_default();
    let as_result = ImageResult {
        labels: h.labels.clone(),
        probs: h.probs.clone(),
        ..r.clone()
    };
    let bars = top(&as_result)
        .into_iter()
        .map(|(label, p)| {
            let pct = format!("{:.1}%", p * 100.0);
            view! {
                <div class="bar">
                    <span class="bar-label">{label}</span>
                    <span class="bar-track"><span class="bar-fill" style:width=pct.clone()></span></span>
                    <span class="bar-value">{pct}</span>
                </div>
            }
        })
        .collect_view();
    Some(view! {
        <div class="head-result" data-testid="head-result" data-label=h.label.clone() data-probs=probs>
            <p>"Your trained head: "<strong>{h.label.clone()}</strong></p>
            {bars}
        </div>
    })
}

#[component]
pub fn ImagePanel(client: WorkerClient, model: ReadSignal<Option<ModelInfo>>) -> impl IntoView {
    let (shown, set_shown) = signal(Vec::<Shown>::new());
    let (error, set_error) = signal(None::<String>);
    let (busy, set_busy) = signal(false);
    let (runs, set_runs) = signal(0u32);
    // The image whose attention is shown: its name, preview and maps.
    let (explained, set_explained) = signal(None::<(String, String, super::attention::Attentions)>);

    let explain = {
        let client = client.clone();
        move |s: Shown| {
            let client = client.clone();
            spawn_local(async move {
                let bytes = match read_bytes(&s.file).await {
                    Ok(b) => b,
                    Err(e) => return set_error.set(Some(e)),
                };
                let request = Request::ClassifyImages {
                    names: vec![s.result.name.clone()],
                    attentions: true,
                };
                match client.call_with_files(request, vec![bytes]).await {
                    Ok(Response::ImageResults { mut results }) if !results.is_empty() => {
                        match results.remove(0).attentions {
                            Some(a) => set_explained.set(Some((s.result.name, s.preview, a))),
                            None => {
                                set_error.set(Some(format!("{}: no attention maps came back", s.result.name)))
                            }
                        }
                    }
                    Ok(other) => set_error.set(Some(format!("unexpected answer: {other:?}"))),
                    Err(m) => set_error.set(Some(m)),
                }
            });
        }
    };

    let classify = move |files: Vec<web_sys::File>| {
        if files.is_empty() {
            return;
        }
        let client = client.clone();
        set_busy.set(true);
        spawn_local(async move {
            let mut names = Vec::new();
            let mut buffers = Vec::new();
            let mut previews = Vec::new();
            let mut kept = Vec::new();
            for f in &files {
                match read_bytes(f).await {
                    Ok(b) => {
                        names.push(f.name());
                        buffers.push(b);
                        previews.push(web_sys::Url::create_object_url_with_blob(f).unwrap_or_default());
                        kept.push(f.clone());
                    }
                    Err(e) => set_error.set(Some(e)),
                }
            }
            let answer = client
                .call_with_files(
                    Request::ClassifyImages {
                        names,
                        attentions: false,
                    },
                    buffers,
                )
                .await;
            match answer {
                Ok(Response::ImageResults { results }) => {
                    set_error.set(None);
                    set_explained.set(None);
                    for old in shown.get_untracked() {
                        let _ = web_sys::Url::revoke_object_url(&old.preview);
                    }
                    set_shown.set(
                        results
                            .into_iter()
                            .zip(previews)
                            .zip(kept)
                            .map(|((result, preview), file)| Shown {
                                result,
                                preview,
                                file,
                            })
                            .collect(),
                    );
                }
                Ok(other) => set_error.set(Some(format!("unexpected answer: {other:?}"))),
                Err(m) => set_error.set(Some(m)),
            }
            set_runs.update(|n| *n += 1);
            set_busy.set(false);
        });
    };
    let on_pick = {
        let classify = classify.clone();
        move |ev: leptos::ev::Event| {
            let input: web_sys::HtmlInputElement = event_target(&ev);
            if let Some(list) = input.files() {
                classify((0..list.length()).filter_map(|i| list.get(i)).collect());
            }
        }
    };
    let on_drop = {
        let classify = classify.clone();
        move |ev: leptos::ev::DragEvent| {
            ev.prevent_default();
            if let Some(list) = ev.data_transfer().and_then(|d| d.files()) {
                classify((0..list.length()).filter_map(|i| list.get(i)).collect());
            }
        }
    };
    let on_paste = move |ev: leptos::ev::ClipboardEvent| {
        if let Some(list) = ev.clipboard_data().and_then(|d| d.files()) {
            if list.length() > 0 {
                ev.prevent_default();
                classify((0..list.length()).filter_map(|i| list.get(i)).collect());
            }
        }
    };

    view! {
        <section aria-labelledby="images-title" on:paste=on_paste>
            <h2 id="images-title">"Classify images"</h2>
            <p class="hint">
                "Load an image classifier (a ViT: config.json, model.safetensors, preprocessor_config.json) "
                "above, then drop, paste or pick images. Preprocessing matches the model's own "
                "(PIL-exact resize), all in the worker."
            </p>
            <p>
                {move || match model.get() {
                    Some(m) if m.modality == "image" => format!("Model: {} ({} classes) on {}", m.architecture, m.labels.len(), m.backend),
                    Some(_) => "The loaded model takes text; load an image model to classify images.".to_string(),
                    None => "No model loaded yet.".to_string(),
                }}
            </p>
            <div
                class="dropzone"
                tabindex="0"
                on:dragover=|ev: leptos::ev::DragEvent| ev.prevent_default()
                on:drop=on_drop
            >
                <label>
                    "Drop, paste or pick images: "
                    <input
                        type="file"
                        multiple
                        accept="image/*"
                        data-testid="image-input"
                        on:change=on_pick
                        disabled=move || busy.get() || model.get().is_none_or(|m| m.modality != "image")
                    />
                </label>
            </div>
            {move || error.get().map(|m| view! { <p class="error" role="alert" data-testid="error">{m}</p> })}
            <ul class="results image-results" data-testid="image-results" data-runs=move || runs.get().to_string()>
                {move || {
                    shown
                        .get()
                        .into_iter()
                        .map(|s| {
                            let explain = explain.clone();
                            let to_explain = s.clone();
                            let r = s.result;
                            let probs = serde_json::to_string(&r.probs).unwrap_or_default();
                            let body = match &r.error {
                                Some(e) => view! { <p class="error" data-testid="image-error">{e.clone()}</p> }.into_any(),
                                None => top(&r)
                                    .into_iter()
                                    .map(|(label, p)| {
                                        let pct = format!("{:.1}%", p * 100.0);
                                        view! {
                                            <div class="bar">
                                                <span class="bar-label">{label}</span>
                                                <span class="bar-track"><span class="bar-fill" style:width=pct.clone()></span></span>
                                                <span class="bar-value">{pct}</span>
                                            </div>
                                        }
                                    })
                                    .collect_view()
                                    .into_any(),
                            };
                            view! {
                                <li data-testid="image-result" data-name=r.name.clone() data-label=r.label.clone() data-probs=probs>
                                    {r.error.is_none().then(|| view! { <img class="preview" src=s.preview.clone() alt=r.name.clone() /> })}
                                    <div>
                                        <p class="result-text">{r.name.clone()}" → "<strong>{r.label.clone()}</strong></p>
                                        {body}
                                        {head_result(&r)}
                                        {r.error.is_none().then(|| view! {
                                            <button
                                                class="secondary"
                                                data-testid="explain-image-attention"
                                                on:click=move |_| explain(to_explain.clone())
                                            >
                                                "Show attention"
                                            </button>
                                        })}
                                    </div>
                                </li>
                            }
                        })
                        .collect_view()
                }}
            </ul>
            {move || {
                explained
                    .get()
                    .map(|(name, url, attentions)| {
                        let n = attentions.first().and_then(|l| l.first()).map_or(0, Vec::len);
                        view! {
                            <h3>"Attention for "{name}</h3>
                            <super::attention::AttentionExplorer tokens=patch_tokens(n) attentions=attentions image_url=url />
                        }
                    })
            }}
        </section>
    }
}
