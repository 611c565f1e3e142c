use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use super::worker_client::WorkerClient;
use crate::engine::tokenize::Token;
use crate::protocol::{HeadInfo, HeadResult, ModelInfo, Request, Response, TextResult};

const DEMO_TOKENIZER: &str = "./demo/tokenizer.json";

async fn fetch_text(url: &str) -> Result<String, String> {
    let window = web_sys::window().ok_or("no window")?;
    let resp: web_sys::Response = JsFuture::from(window.fetch_with_str(url))
        .await
        .map_err(|e| format!("could not fetch {url}: {e:?}"))?
        .unchecked_into();
    if !resp.ok() {
        return Err(format!("could not fetch {url}: HTTP {}", resp.status()));
    }
    let text = JsFuture::from(resp.text().map_err(|e| format!("{e:?}"))?)
        .await
        .map_err(|e| format!("could not read {url}: {e:?}"))?;
    text.as_string().ok_or_else(|| format!("{url} is not text"))
}

async fn read_file_text(file: &web_sys::File) -> Result<String, String> {
    let text = JsFuture::from(file.text())
        .await
        .map_err(|e| format!("could not read {}: {e:?}", file.name()))?;
    text.as_string()
        .ok_or_else(|| format!("{} is not text", file.name()))
}

/// One probability bar per class.
fn bars(labels: &[String], probs: &[f32]) -> impl IntoView {
    labels
        .iter()
        .zip(probs)
        .map(|(name, p)| {
            let pct = format!("{:.1}%", p * 100.0);
            view! {
                <div class="bar">
                    <span class="bar-label">{name.clone()}</span>
                    <span class="bar-track"><span class="bar-fill" style:width=pct.clone()></span></span>
                    <span class="bar-value">{pct}</span>
                </div>
            }
        })
        .collect_view()
}

/// Text classification: a model (and a trained head, if any) on typed lines; live tokens.
#[component]
pub fn TextPanel(
    client: WorkerClient,
    model: ReadSignal<Option<ModelInfo>>,
    head: ReadSignal<Option<HeadInfo>>,
) -> impl IntoView {
    let (tokenizer, set_tokenizer) = signal(None::<String>);
    let (error, set_error) = signal(None::<String>);
    let (text, set_text) = signal(String::new());
    let (tokens, set_tokens) = signal(Vec::<Token>::new());
    let (results, set_results) = signal(Vec::<TextResult>::new());
    let (classifying, set_classifying) = signal(false);
    // Finished classify requests: tests (and screen readers' live region) see a new answer.
    let (runs, set_runs) = signal(0u32);
    let (classify_error, set_classify_error) = signal(None::<String>);
    // The input whose attention is shown: its text, tokens and maps.
    let (explained, set_explained) = signal(None::<(String, Vec<String>, super::attention::Attentions)>);
    let explain = {
        let client = client.clone();
        move |text: String| {
            let client = client.clone();
            spawn_local(async move {
                let request = Request::ClassifyText {
                    texts: vec![text.clone()],
                    attentions: true,
                };
                match client.call(request).await {
                    Ok(Response::TextResults { mut results }) if !results.is_empty() => {
                        let r = results.remove(0);
                        let tokens = r.tokens.into_iter().map(|t| t.text).collect();
                        if let Some(a) = r.attentions {
                            set_explained.set(Some((text, tokens, a)));
                        }
                    }
                    Ok(other) => set_classify_error.set(Some(format!("unexpected answer: {other:?}"))),
                    Err(m) => set_classify_error.set(Some(m)),
                }
            });
        }
    };
    // Answers can come back out of order; only the newest request's answer is shown.
    let generation = RwSignal::new(0u64);

    let tokenize = {
        let client = client.clone();
        move || {
            let client = client.clone();
            let text = text.get_untracked();
            generation.update(|g| *g += 1);
            let mine = generation.get_untracked();
            spawn_local(async move {
                let result = client.call(Request::Tokenize { text }).await;
                if generation.get_untracked() != mine {
                    return;
                }
                match result {
                    Ok(Response::Tokens { tokens }) => {
                        set_error.set(None);
                        set_tokens.set(tokens);
                    }
                    Ok(other) => set_error.set(Some(format!("unexpected answer: {other:?}"))),
                    Err(message) => set_error.set(Some(message)),
                }
            });
        }
    };

    let load = {
        let client = client.clone();
        let tokenize = tokenize.clone();
        move |source: String, json: String| {
            let client = client.clone();
            let tokenize = tokenize.clone();
            spawn_local(async move {
                match client.call(Request::LoadTokenizer { source, json }).await {
                    Ok(Response::TokenizerLoaded { source, vocab_size }) => {
                        set_error.set(None);
                        set_tokenizer.set(Some(format!("{source} ({vocab_size} tokens)")));
                        tokenize();
                    }
                    Ok(other) => set_error.set(Some(format!("unexpected answer: {other:?}"))),
                    // The previous tokenizer stays in use.
                    Err(message) => set_error.set(Some(message)),
                }
            });
        }
    };

    // A text model brings its own tokenizer, which the worker now uses for the token view.
    {
        let tokenize = tokenize.clone();
        Effect::new(move || {
            if let Some(m) = model.get().filter(|m| m.modality == "text") {
                set_tokenizer.set(Some(format!("the model's own ({})", m.source)));
                tokenize();
            }
        });
    }

    {
        let load = load.clone();
        spawn_local(async move {
            match fetch_text(DEMO_TOKENIZER).await {
                Ok(json) => load("demo tokenizer (all-MiniLM-L6-v2)".to_string(), json),
                Err(message) => set_error.set(Some(format!("The demo tokenizer did not load: {message}"))),
            }
        });
    }

    let classify = {
        let client = client.clone();
        move |_| {
            let texts: Vec<String> = text
                .get_untracked()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect();
            if texts.is_empty() {
                set_classify_error.set(Some("Type at least one line of text to classify.".into()));
                return;
            }
            let client = client.clone();
            set_classifying.set(true);
            spawn_local(async move {
                let answer = client
                    .call(Request::ClassifyText {
                        texts,
                        attentions: false,
                    })
                    .await;
                set_classifying.set(false);
                set_runs.update(|n| *n += 1);
                match answer {
                    Ok(Response::TextResults { results }) => {
                        set_classify_error.set(None);
                        set_results.set(results);
                    }
                    Ok(other) => set_classify_error.set(Some(format!("unexpected answer: {other:?}"))),
                    Err(message) => set_classify_error.set(Some(message)),
                }
            });
        }
    };

    let load_file = move |file: web_sys::File| {
        let load = load.clone();
        spawn_local(async move {
            match read_file_text(&file).await {
                Ok(json) => load(file.name(), json),
                Err(message) => set_error.set(Some(message)),
            }
        });
    };
    let on_pick = {
        let load_file = load_file.clone();
        move |ev: leptos::ev::Event| {
            let input: web_sys::HtmlInputElement = event_target(&ev);
            if let Some(file) = input.files().and_then(|f| f.get(0)) {
                load_file(file);
            }
        }
    };
    let on_drop = move |ev: leptos::ev::DragEvent| {
        ev.prevent_default();
        if let Some(file) = ev.data_transfer().and_then(|d| d.files()).and_then(|f| f.get(0)) {
            load_file(file);
        }
    };
    let on_input = move |ev: leptos::ev::Event| {
        set_text.set(event_target_value(&ev));
        tokenize();
    };

    view! {
        <section aria-labelledby="text-title">
            <h2 id="text-title">"Classify text"</h2>
            <p class="hint">
                "Load a text classifier above (or an encoder with a head trained on the Fine-tune tab), "
                "type one sentence per line, and classify. "
                "Everything runs in WebAssembly inside a worker; nothing leaves your machine."
            </p>
            <div
                class="dropzone"
                on:dragover=|ev: leptos::ev::DragEvent| ev.prevent_default()
                on:drop=on_drop
            >
                <p>
                    "Tokenizer: "
                    <strong data-testid="tokenizer-name">
                        {move || tokenizer.get().unwrap_or_else(|| "loading…".to_string())}
                    </strong>
                </p>
                <label>
                    "Use another tokenizer.json (drop it here or pick it): "
                    <input type="file" accept=".json,application/json" data-testid="tokenizer-file" on:change=on_pick />
                </label>
            </div>
            <label for="text-input">"Text"</label>
            <textarea
                id="text-input"
                data-testid="text-input"
                rows="4"
                placeholder="Type a sentence, e.g. A quietly moving film."
                on:input=on_input
                prop:value=text
            ></textarea>
            {move || error.get().map(|m| view! { <p class="error" role="alert" data-testid="error">{m}</p> })}
            <button
                data-testid="classify-text"
                on:click=classify
                disabled=move || model.get().is_none_or(|m| m.labels.is_empty() && head.get().is_none())
            >
                {move || if classifying.get() { "Classifying…" } else { "Classify" }}
            </button>
            {move || classify_error.get().map(|m| view! { <p class="error" role="alert" data-testid="error">{m}</p> })}
            <ul class="results" data-testid="text-results" data-runs=move || runs.get().to_string()>
                {move || {
                    results
                        .get()
                        .into_iter()
                        .map(|r| {
                            let probs_json = serde_json::to_string(&r.probs).unwrap_or_default();
                            let head = r.head.clone().map(|h: HeadResult| {
                                let probs = serde_json::to_string(&h.probs).unwrap_or_default();
                                view! {
                                    <div class="head-result" data-testid="head-result" data-label=h.label.clone() data-probs=probs>
                                        <p>"Your trained head: "<strong>{h.label.clone()}</strong></p>
                                        {bars(&h.labels, &h.probs)}
                                    </div>
                                }
                            });
                            let explain = explain.clone();
                            let text = r.text.clone();
                            view! {
                                <li data-testid="text-result" data-label=r.label.clone() data-probs=probs_json>
                                    <p class="result-text">{r.text.clone()}" → "<strong>{r.label.clone()}</strong></p>
                                    {bars(&r.labels, &r.probs)}
                                    {head}
                                    <button class="secondary" data-testid="explain-attention" on:click=move |_| explain(text.clone())>
                                        "Show attention"
                                    </button>
                                </li>
                            }
                        })
                        .collect_view()
                }}
            </ul>
            {move || {
                explained
                    .get()
                    .map(|(text, tokens, attentions)| {
                        view! {
                            <h3>"Attention for “"{text}"”"</h3>
                            <super::attention::AttentionExplorer tokens=tokens attentions=attentions />
                        }
                    })
            }}
            <h3>"Tokens"</h3>
            <div
                class="tokens"
                data-testid="tokens"
                data-count=move || tokens.get().len().to_string()
                data-ids=move || serde_json::to_string(&tokens.get().iter().map(|t| t.id).collect::<Vec<_>>()).unwrap_or_default()
                aria-label="Tokens"
            >
                {move || {
                    tokens
                        .get()
                        .into_iter()
                        .map(|t| {
                            view! {
                                <span class="token" class:special=t.special title=format!("id {}", t.id) data-testid="token">
                                    <span class="token-text">{t.text}</span>
                                    <small>{t.id}</small>
                                </span>
                            }
                        })
                        .collect_view()
                }}
            </div>
        </section>
    }
}
