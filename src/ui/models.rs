//! The model catalogue: the offline defaults this site serves itself (`models/index.json`,
//! written at build time by `scripts/offline-models.sh`), good hub defaults, and any hub
//! repo id; the hub's base URL (a field kept in localStorage, or `?hub=URL`); and the
//! "stored models" list of what the Cache API keeps, with sizes and delete buttons.

use leptos::prelude::*;
use leptos::task::spawn_local;
use send_wrapper::SendWrapper;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use super::download::{self, CancelHandle, DlProgress, Downloader, Failure, StoredModel};
use super::worker_client::WorkerClient;
use crate::engine::config::ModelConfig;
use crate::hub::{self, OfflineIndex, OfflineModel};
use crate::protocol::{HeadInfo, ModelInfo, Progress, Request, Response};

/// Where the hub's base URL is remembered.
const STORED_HUB: &str = "webformer.hub";

/// What the loading bar shows: bytes arriving, or the worker building the model.
#[derive(Clone, Debug, PartialEq)]
pub enum LoadProgress {
    Download(DlProgress),
    Worker(Progress),
}

/// The offline folder: still being looked up, missing (with why), or its models.
#[derive(Clone, Debug, PartialEq)]
enum Offline {
    Looking,
    Missing(String),
    Ready(Vec<OfflineModel>),
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok()?
}

/// `?hub=URL`, else the remembered base, else the Hugging Face hub.
fn initial_hub() -> String {
    super::url_param("hub")
        .or_else(|| storage()?.get_item(STORED_HUB).ok()?)
        .unwrap_or_else(|| hub::DEFAULT_HUB.to_string())
}

async fn fetch_offline_index() -> Offline {
    let Some(window) = web_sys::window() else {
        return Offline::Missing("no window".into());
    };
    let response: web_sys::Response = match JsFuture::from(window.fetch_with_str("models/index.json")).await {
        Ok(r) => r.unchecked_into(),
        Err(_) => return Offline::Missing("the site could not be reached".into()),
    };
    if !response.ok() {
        return Offline::Missing("this site ships no offline models (scripts/setup.sh fetches them)".into());
    }
    let text = match response.text() {
        Ok(p) => JsFuture::from(p).await.ok().and_then(|t| t.as_string()),
        Err(_) => None,
    };
    match text.map(|t| serde_json::from_str::<OfflineIndex>(&t)) {
        Some(Ok(index)) if !index.models.is_empty() => Offline::Ready(index.models),
        Some(Ok(_)) => Offline::Missing("the site's models/index.json lists no models".into()),
        _ => Offline::Missing("the site's models/index.json is not readable".into()),
    }
}

/// The hooks the catalogue shares with "open local files": one status line, one error,
/// one progress bar, one busy flag for all ways of loading.
#[derive(Clone, Copy)]
pub struct LoadUi {
    pub set_model: WriteSignal<Option<ModelInfo>>,
    pub set_head: WriteSignal<Option<HeadInfo>>,
    pub set_status: WriteSignal<String>,
    pub set_error: WriteSignal<Option<String>>,
    pub set_progress: WriteSignal<Option<LoadProgress>>,
    pub busy: ReadSignal<bool>,
    pub set_busy: WriteSignal<bool>,
}

/// What to load.
#[derive(Clone, Debug)]
enum Choice {
    Site(OfflineModel),
    Hub {
        base: String,
        repo: String,
        revision: String,
    },
}

#[component]
pub fn ModelCatalogue(client: WorkerClient, ui: LoadUi) -> impl IntoView {
    let (offline, set_offline) = signal(Offline::Looking);
    let (selected, set_selected) = signal(String::new());
    let (repo, set_repo) = signal(String::new());
    let (hub_base, set_hub_base) = signal(initial_hub());
    let (stored, set_stored) = signal(Vec::<StoredModel>::new());
    let (stored_note, set_stored_note) = signal(None::<String>);
    let cancel: SendWrapper<Rc<RefCell<Option<CancelHandle>>>> =
        SendWrapper::new(Rc::new(RefCell::new(None)));
    // Cancel works while bytes arrive and while the worker builds the model (the built
    // model is then dropped, not put in use), until the moment it is installed.
    let (cancellable, set_cancellable) = signal(false);

    let refresh_stored = move || {
        spawn_local(async move {
            match download::stored_models().await {
                Ok(list) => {
                    set_stored.set(list);
                    set_stored_note.set(None);
                }
                Err(e) => set_stored_note.set(Some(e)),
            }
        });
    };
    refresh_stored();
    spawn_local(async move {
        let found = fetch_offline_index().await;
        if selected.get_untracked().is_empty() {
            set_selected.set(match &found {
                Offline::Ready(models) => format!("site:{}", models[0].id),
                _ => format!("hub:{}", hub::HUB_DEFAULTS[0].repo),
            });
        }
        set_offline.set(found);
    });

    let choice = move || -> Result<Choice, String> {
        let sel = selected.get_untracked();
        if let Some(id) = sel.strip_prefix("site:") {
            if let Offline::Ready(models) = offline.get_untracked() {
                if let Some(m) = models.into_iter().find(|m| m.id == id) {
                    return Ok(Choice::Site(m));
                }
            }
            return Err(format!("the offline model {id} is not on this site"));
        }
        let base = hub::check_base(&hub_base.get_untracked())?;
        let typed = if sel == "custom" {
            repo.get_untracked()
        } else {
            sel.strip_prefix("hub:").unwrap_or_default().to_string()
        };
        let (repo, revision) = hub::split_revision(&typed);
        hub::check_repo_id(&repo)?;
        Ok(Choice::Hub { base, repo, revision })
    };

    let on_load = {
        let client = client.clone();
        let cancel = cancel.clone();
        move |_| {
            let choice = match choice() {
                Ok(c) => c,
                Err(e) => {
                    ui.set_error.set(Some(e));
                    return;
                }
            };
            let client = client.clone();
            let cancel = cancel.clone();
            ui.set_busy.set(true);
            ui.set_error.set(None);
            spawn_local(async move {
                let result = load(choice, &client, ui, &cancel, set_cancellable).await;
                cancel.borrow_mut().take();
                set_cancellable.set(false);
                ui.set_progress.set(None);
                match result {
                    Ok((info, notes)) => {
                        let mut text = super::model_files::loaded_text(&info);
                        for n in &notes {
                            text.push_str(". ");
                            text.push_str(n.trim_end_matches('.'));
                        }
                        if !notes.is_empty() {
                            text.push('.');
                        }
                        ui.set_status.set(text);
                        ui.set_model.set(Some(info));
                    }
                    Err(Failure::Cancelled) => ui.set_status.set("Download cancelled.".into()),
                    Err(Failure::CancelledBuild) => ui.set_status.set(
                        "Loading cancelled: the new model was not put in use; the model loaded before (if \
                         any) stays. Its downloaded files are kept."
                            .into(),
                    ),
                    // The model that was loaded before stays in use.
                    Err(f) => ui.set_error.set(Some(f.message())),
                }
                // The stored list is up to date by the time Load is offered again.
                match download::stored_models().await {
                    Ok(list) => set_stored.set(list),
                    Err(e) => set_stored_note.set(Some(e)),
                }
                ui.set_busy.set(false);
            });
        }
    };
    let on_cancel = {
        let cancel = cancel.clone();
        move |_| {
            if let Some(c) = cancel.borrow().as_ref() {
                c.cancel();
            }
        }
    };
    let on_hub = move |ev: leptos::ev::Event| {
        let value = event_target_value(&ev);
        match hub::check_base(&value) {
            Ok(base) => {
                if let Some(s) = storage() {
                    let _ = s.set_item(STORED_HUB, &base);
                }
                set_hub_base.set(base);
            }
            Err(e) => ui.set_error.set(Some(e)),
        }
    };
    let delete = move |model: String| {
        spawn_local(async move {
            match download::delete_model(&model).await {
                Ok(_) => set_stored_note.set(Some(format!("Deleted {model}."))),
                Err(e) => set_stored_note.set(Some(e)),
            }
            refresh_stored();
        });
    };

    let option = move |value: String, label: String| {
        let v = value.clone();
        view! { <option value=value prop:selected=move || selected.get() == v>{label}</option> }
    };

    view! {
        <div class="catalogue">
            <label>
                "Model: "
                <select
                    data-testid="model-select"
                    on:change=move |ev| set_selected.set(event_target_value(&ev))
                    disabled=ui.busy
                >
                    <optgroup label="Offline (served by this site)">
                        {move || match offline.get() {
                            Offline::Looking => view! { <option disabled>"looking for offline models…"</option> }.into_any(),
                            Offline::Missing(why) => {
                                view! { <option disabled data-testid="offline-missing">{format!("none: {why}")}</option> }
                                    .into_any()
                            }
                            Offline::Ready(models) => models
                                .into_iter()
                                .map(|m| option(format!("site:{}", m.id), m.title))
                                .collect_view()
                                .into_any(),
                        }}
                    </optgroup>
                    <optgroup label="Hugging Face hub (needs the internet)">
                        {hub::HUB_DEFAULTS
                            .iter()
                            .map(|d| option(format!("hub:{}", d.repo), format!("{} — {}", d.title, d.repo)))
                            .collect_view()}
                        {option("custom".into(), "Another hub repo (type its id)…".into())}
                    </optgroup>
                </select>
            </label>
            " "
            <input
                type="text"
                data-testid="model-repo"
                aria-label="Hub repo id"
                placeholder="owner/name or owner/name@revision"
                prop:value=repo
                on:input=move |ev| {
                    set_repo.set(event_target_value(&ev));
                    set_selected.set("custom".into());
                }
            />
            " "
            <button data-testid="model-load" on:click=on_load disabled=ui.busy>"Load"</button>
            " "
            <button data-testid="model-cancel" on:click=on_cancel disabled=move || !cancellable.get()>
                "Cancel"
            </button>
            <details class="hub-settings">
                <summary>"Hub settings"</summary>
                <label>
                    "Hub base URL (for mirrors): "
                    <input type="url" data-testid="hub-url" prop:value=hub_base on:change=on_hub />
                </label>
            </details>
            <div class="stored">
                <h2>"Stored models"</h2>
                <ul data-testid="stored-models" data-count=move || stored.get().len()>
                    {move || {
                        let list = stored.get();
                        if list.is_empty() {
                            return view! { <li class="note">"No downloaded models are kept in this browser yet."</li> }
                                .into_any();
                        }
                        list.into_iter()
                            .map(|m| {
                                let name = m.model.clone();
                                view! {
                                    <li data-testid="stored-model" data-model=m.model.clone() data-bytes=m.bytes>
                                        <span>{format!("{} — {} MB, {} files ", m.model, hub::mb(m.bytes), m.files)}</span>
                                        <button
                                            data-testid="stored-model-delete"
                                            aria-label=format!("Delete {}", m.model)
                                            on:click=move |_| delete(name.clone())
                                        >
                                            "Delete"
                                        </button>
                                    </li>
                                }
                            })
                            .collect_view()
                            .into_any()
                    }}
                </ul>
                <p class="note" aria-live="polite">{stored_note}</p>
            </div>
        </div>
    }
}

/// Downloads (or reads from the cache) the chosen model's files and loads them in the
/// worker; also returns what the user should know (files not verified, stored copies
/// replaced).
///
/// The worker builds the model and sets it aside (`BuildModel`); only if Cancel was not
/// pressed meanwhile is it put in use (`UseBuiltModel`). The build itself runs to its end
/// in the worker (one synchronous step there, which a message cannot interrupt), but a
/// cancelled one is dropped: the model loaded before stays, nothing is half-loaded.
async fn load(
    choice: Choice,
    client: &WorkerClient,
    ui: LoadUi,
    cancel: &Rc<RefCell<Option<CancelHandle>>>,
    set_cancellable: WriteSignal<bool>,
) -> Result<(ModelInfo, Vec<String>), Failure> {
    let on_progress = move |p: DlProgress| {
        ui.set_status.set(format!("Downloading: {}", p.text()));
        ui.set_progress.set(Some(LoadProgress::Download(p)));
    };
    let (label, keep) = match &choice {
        Choice::Site(m) => (m.id.clone(), false),
        Choice::Hub { repo, revision, .. } if revision == "main" => (repo.clone(), true),
        Choice::Hub { repo, revision, .. } => (format!("{repo}@{revision}"), true),
    };
    let (dl, handle) = Downloader::new(&label, keep, on_progress)
        .await
        .map_err(Failure::Failed)?;
    *cancel.borrow_mut() = Some(handle);
    set_cancellable.set(true);
    ui.set_status.set(format!("Fetching {label}…"));
    let fetched = match &choice {
        Choice::Site(m) => fetch_site(&dl, m).await,
        Choice::Hub { base, repo, revision } => fetch_hub(&dl, base, repo, revision).await,
    };
    let files = match fetched {
        Ok(f) => f,
        Err(Failure::Cancelled) => return Err(Failure::Cancelled),
        Err(e) => {
            // A bad file is not kept: loading again fetches it afresh. After a network
            // failure the complete files stay, so the next try fetches only the rest.
            if keep && !matches!(e, Failure::Network(_)) {
                let _ = download::delete_model(&label).await;
            }
            return Err(e);
        }
    };
    let names: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
    let buffers: Vec<js_sys::ArrayBuffer> = files.iter().map(|(_, b)| b.buffer()).collect();
    let on_worker = move |p: Progress| {
        ui.set_status.set(format!("Loading: {}…", p.stage));
        ui.set_progress.set(Some(LoadProgress::Worker(p)));
    };
    let source = match &choice {
        Choice::Site(m) => format!("{} (offline)", m.id),
        Choice::Hub { .. } => label.clone(),
    };
    if dl.is_cancelled() {
        return Err(Failure::CancelledBuild);
    }
    ui.set_status
        .set(format!("Building {label}: sending the files to the worker…"));
    ui.set_progress.set(Some(LoadProgress::Worker(Progress::stage(
        "sending the files",
        0,
        2,
    ))));
    let built = client
        .call_with_progress(Request::BuildModel { source, names }, buffers, on_worker)
        .await;
    let built = match built {
        Ok(Response::ModelLoaded(_)) if dl.is_cancelled() => {
            let _ = client.call(Request::UseBuiltModel { keep: false }).await;
            return Err(Failure::CancelledBuild);
        }
        // Past this point Cancel has nothing left to stop.
        Ok(Response::ModelLoaded(_)) => {
            set_cancellable.set(false);
            client.call(Request::UseBuiltModel { keep: true }).await
        }
        other => other,
    };
    let info = match built {
        Ok(Response::ModelLoaded(info)) => info,
        Ok(other) => return Err(Failure::Failed(format!("unexpected answer: {other:?}"))),
        Err(message) => {
            if keep {
                let _ = download::delete_model(&label).await;
                return Err(Failure::Failed(format!(
                    "{label}: {message} (the downloaded copy was removed from this browser)"
                )));
            }
            return Err(Failure::Failed(format!("{label}: {message}")));
        }
    };
    if let Choice::Site(OfflineModel { head: Some(head), .. }) = &choice {
        install_head(client, ui, head).await;
    }
    let mut notes = dl.notes();
    let unverified = dl.unverified();
    if !unverified.is_empty() {
        notes.push(format!(
            "Not verified: {} (the hub sent no checksum for {}).",
            unverified.join(", "),
            if unverified.len() == 1 { "it" } else { "them" }
        ));
    }
    Ok((info, notes))
}

/// The offline default's trained head (e.g. MiniLM's sentiment head), used at once in the
/// text panel; a missing head costs the labels, not the model.
async fn install_head(client: &WorkerClient, ui: LoadUi, path: &str) {
    let url = format!("models/{path}");
    let Some(window) = web_sys::window() else { return };
    let bytes = async {
        let r: web_sys::Response = JsFuture::from(window.fetch_with_str(&url))
            .await
            .ok()?
            .unchecked_into();
        if !r.ok() {
            return None;
        }
        JsFuture::from(r.array_buffer().ok()?)
            .await
            .ok()?
            .dyn_into::<js_sys::ArrayBuffer>()
            .ok()
    }
    .await;
    let Some(bytes) = bytes else {
        ui.set_error
            .set(Some(format!("the offline head {url} could not be fetched")));
        return;
    };
    let request = Request::ImportHead {
        name: format!("{path} (offline default head)"),
    };
    match client.call_with_files(request, vec![bytes]).await {
        Ok(Response::HeadLoaded(info)) => ui.set_head.set(Some(info)),
        Ok(other) => ui.set_error.set(Some(format!("unexpected answer: {other:?}"))),
        Err(e) => ui.set_error.set(Some(e)),
    }
}

async fn fetch_site(dl: &Downloader, m: &OfflineModel) -> Result<Vec<(String, js_sys::Uint8Array)>, Failure> {
    for f in &m.files {
        dl.announce(&f.name, f.size);
    }
    let mut out = Vec::new();
    for f in &m.files {
        let url = format!("models/{}/{}", m.id, f.name);
        out.push((f.name.clone(), dl.get(&f.name, &url).await?));
    }
    Ok(out)
}

/// config.json first (an unsupported architecture stops before the weights), then the
/// tokenizer or preprocessor, then the weights: one `model.safetensors`, or the shards
/// a `model.safetensors.index.json` lists.
async fn fetch_hub(
    dl: &Downloader,
    base: &str,
    repo: &str,
    revision: &str,
) -> Result<Vec<(String, js_sys::Uint8Array)>, Failure> {
    let url = |f: &str| hub::resolve_url(base, repo, revision, f);
    let mut out = Vec::new();
    // What each file should hash to; without it the headers (or nothing) decide.
    dl.load_checksums(&hub::api_revision_url(base, repo, revision))
        .await?;
    let config = dl
        .get("config.json", &url("config.json"))
        .await
        .map_err(|e| match e {
            Failure::NotFound(_) => Failure::Failed(format!(
                "{repo}: no config.json at {} (404): check the repo id, the revision and the hub URL",
                url("config.json")
            )),
            e => e,
        })?;
    let bytes = config.to_vec();
    hub::check_json("config.json", &bytes).map_err(Failure::Failed)?;
    let cfg =
        ModelConfig::from_json("config.json", &bytes).map_err(|e| Failure::Failed(format!("{repo}: {e}")))?;
    out.push(("config.json".to_string(), config));

    if cfg.architecture.is_vision() {
        match dl
            .get("preprocessor_config.json", &url("preprocessor_config.json"))
            .await
        {
            Ok(b) => {
                hub::check_json("preprocessor_config.json", &b.to_vec()).map_err(Failure::Failed)?;
                out.push(("preprocessor_config.json".into(), b));
            }
            // ViTImageProcessor's defaults then apply.
            Err(Failure::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    } else {
        let tok = dl
            .get("tokenizer.json", &url("tokenizer.json"))
            .await
            .map_err(|e| match e {
                Failure::NotFound(_) => Failure::Failed(format!(
                    "{repo} has no tokenizer.json (perhaps only vocab.txt): webformer needs the fast \
                 tokenizer file"
                )),
                e => e,
            })?;
        hub::check_json("tokenizer.json", &tok.to_vec()).map_err(Failure::Failed)?;
        out.push(("tokenizer.json".into(), tok));
    }

    // Weights: the cached copy, else their sizes first (for the overall percentage).
    let single = "model.safetensors";
    if let Some(b) = dl.cached(single, &url(single)).await {
        out.push((single.into(), b));
        return Ok(out);
    }
    let shards = match dl.head_size(single, &url(single)).await {
        Ok(size) => {
            dl.announce(single, size.unwrap_or(0));
            vec![single.to_string()]
        }
        Err(Failure::NotFound(_)) => {
            let index_name = "model.safetensors.index.json";
            let index = dl.get(index_name, &url(index_name)).await.map_err(|e| match e {
                Failure::NotFound(_) => Failure::Failed(format!(
                    "{repo} has neither model.safetensors nor {index_name}: webformer reads safetensors \
                     weights only (this repo may have just pytorch_model.bin)"
                )),
                e => e,
            })?;
            let shards = hub::shard_names(&index.to_vec()).map_err(Failure::Failed)?;
            out.push((index_name.into(), index));
            for s in &shards {
                if let Ok(Some(size)) = dl.head_size(s, &url(s)).await {
                    dl.announce(s, size);
                }
            }
            shards
        }
        Err(e) => return Err(e),
    };
    for s in shards {
        let bytes = dl.get(&s, &url(&s)).await?;
        out.push((s, bytes));
    }
    Ok(out)
}
