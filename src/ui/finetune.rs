//! Head-only fine-tuning from a dropped CSV: pick the columns, train on the loaded encoder's
//! embeddings in the worker (WebGPU where there is one), watch the curves, read the
//! confusion matrix, export or import the head. The head is kept in the browser
//! (localStorage), so a reload keeps it.

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::training::{cancel_handler, number_field, read_bytes, HeadKind, TrainProgress, Training};
use super::worker_client::WorkerClient;
use crate::engine::finetune::{EpochReport, TrainConfig};
use crate::protocol::{CsvInfo, HeadInfo, ModelInfo, Request, Response, TrainSummary};

/// The text head: exported as head.safetensors, kept in the browser under "webformer.head"
/// (base64 of head.safetensors).
const TEXT_HEAD: HeadKind = HeadKind {
    export: || Request::ExportHead,
    import: |name| Request::ImportHead { name },
    file: "head",
    key: "webformer.head",
    what: "head",
};

/// Restores the head kept in the browser, if any (called once at start).
pub fn restore_head(client: WorkerClient, set_head: WriteSignal<Option<HeadInfo>>) {
    TEXT_HEAD.restore(client, set_head);
}

#[component]
pub fn FineTunePanel(
    client: WorkerClient,
    model: ReadSignal<Option<ModelInfo>>,
    head: ReadSignal<Option<HeadInfo>>,
    set_head: WriteSignal<Option<HeadInfo>>,
) -> impl IntoView {
    let (csv, set_csv) = signal(None::<CsvInfo>);
    let (text_col, set_text_col) = signal(0usize);
    let (label_col, set_label_col) = signal(0usize);
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

    let open_csv = {
        let client = client.clone();
        move |file: web_sys::File| {
            let client = client.clone();
            spawn_local(async move {
                let bytes = match read_bytes(&file).await {
                    Ok(b) => b,
                    Err(e) => return set_error.set(Some(e)),
                };
                match client
                    .call_with_files(Request::InspectCsv { name: file.name() }, vec![bytes])
                    .await
                {
                    Ok(Response::CsvInfo(info)) => {
                        set_error.set(None);
                        set_text_col.set(info.text_col.unwrap_or(0));
                        set_label_col.set(info.label_col.unwrap_or(info.columns.len().saturating_sub(1)));
                        set_csv.set(Some(info));
                    }
                    Ok(other) => set_error.set(Some(format!("unexpected answer: {other:?}"))),
                    // The CSV opened before stays.
                    Err(m) => set_error.set(Some(m)),
                }
            });
        }
    };
    let on_pick = {
        let open_csv = open_csv.clone();
        move |ev: leptos::ev::Event| {
            let input: web_sys::HtmlInputElement = event_target(&ev);
            if let Some(f) = input.files().and_then(|f| f.get(0)) {
                open_csv(f);
            }
        }
    };
    let on_drop = move |ev: leptos::ev::DragEvent| {
        ev.prevent_default();
        if let Some(f) = ev.data_transfer().and_then(|d| d.files()).and_then(|f| f.get(0)) {
            open_csv(f);
        }
    };

    let start = {
        let client = client.clone();
        move |_| {
            training.begin();
            let request = Request::Train {
                text_col: text_col.get_untracked(),
                label_col: label_col.get_untracked(),
                config: config.get_untracked(),
            };
            spawn_local(training.run(client.clone(), request, Vec::new(), TEXT_HEAD, set_head));
        }
    };
    let cancel = cancel_handler(client.clone());
    let export = TEXT_HEAD.export_handler(client.clone(), set_error);
    let import = TEXT_HEAD.import_handler(client, set_head, set_error);

    let column_select = move |testid: &'static str,
                              label: &'static str,
                              value: ReadSignal<usize>,
                              set: WriteSignal<usize>| {
        view! {
            <label>
                {label}
                <select
                    data-testid=testid
                    on:change=move |ev| set.set(event_target_value(&ev).parse().unwrap_or(0))
                    prop:value=move || value.get().to_string()
                >
                    {move || {
                        csv.get()
                            .map(|c| c.columns)
                            .unwrap_or_default()
                            .into_iter()
                            .enumerate()
                            .map(|(i, name)| view! { <option value=i.to_string()>{name}</option> })
                            .collect_view()
                    }}
                </select>
            </label>
        }
    };
    let number = move |label: &'static str, get: fn(&TrainConfig) -> f64, put: fn(&mut TrainConfig, f64)| {
        number_field(config, label, get, put)
    };

    view! {
        <section aria-labelledby="finetune-title">
            <h2 id="finetune-title">"Fine-tune"</h2>
            <p class="hint">
                "Train a small classification head on a frozen encoder's sentence embeddings, here in "
                "the browser. Load an encoder (e.g. all-MiniLM-L6-v2) on the Classify text tab, then drop "
                "a CSV with a text column and a label column."
            </p>
            <p data-testid="finetune-model">
                {move || match model.get() {
                    Some(m) => format!("Encoder: {} ({} wide) on {}", m.source, m.hidden, m.backend),
                    None => "No encoder loaded yet.".to_string(),
                }}
            </p>
            <div class="dropzone" on:dragover=|ev: leptos::ev::DragEvent| ev.prevent_default() on:drop=on_drop>
                <label>
                    "Drop a CSV here or pick one: "
                    <input type="file" accept=".csv,.tsv,.txt,text/csv" data-testid="csv-input" on:change=on_pick />
                </label>
            </div>
            {move || error.get().map(|m| view! { <p class="error" role="alert" data-testid="error">{m}</p> })}
            {move || {
                csv.get()
                    .map(|c| {
                        view! {
                            <p data-testid="csv-summary">
                                {format!(
                                    "{}: {} rows, delimiter “{}”, {}",
                                    c.name,
                                    c.rows,
                                    c.delimiter,
                                    if c.has_header { "with a header" } else { "no header" },
                                )}
                            </p>
                            <table class="preview" data-testid="csv-preview">
                                <thead>
                                    <tr>{c.columns.iter().map(|h| view! { <th>{h.clone()}</th> }).collect_view()}</tr>
                                </thead>
                                <tbody>
                                    {c.preview
                                        .iter()
                                        .map(|row| view! { <tr>{row.iter().map(|v| view! { <td>{v.clone()}</td> }).collect_view()}</tr> })
                                        .collect_view()}
                                </tbody>
                            </table>
                        }
                    })
            }}
            <div class="columns">
                {column_select("text-column", "Text column ", text_col, set_text_col)}
                {column_select("label-column", "Label column ", label_col, set_label_col)}
            </div>
            <details class="advanced">
                <summary>"Advanced"</summary>
                {number("Epochs ", |c| c.epochs as f64, |c, v| c.epochs = v.max(1.0) as usize)}
                {number("Learning rate ", |c| c.lr, |c, v| c.lr = v)}
                {number("Weight decay ", |c| c.weight_decay, |c, v| c.weight_decay = v)}
                {number("Batch size ", |c| c.batch_size as f64, |c, v| c.batch_size = v.max(1.0) as usize)}
                {number("Hidden layer width (0 = linear) ", |c| c.hidden.unwrap_or(0) as f64, |c, v| {
                    c.hidden = (v >= 1.0).then_some(v as usize)
                })}
                {number("Early-stopping patience (epochs) ", |c| c.patience as f64, |c, v| c.patience = v.max(1.0) as usize)}
            </details>
            <button
                data-testid="train-start"
                on:click=start
                disabled=move || busy.get() || csv.get().is_none() || model.get().is_none()
            >
                "Train"
            </button>
            <button data-testid="train-cancel" on:click=cancel disabled=move || !busy.get()>
                "Cancel"
            </button>
            <TrainProgress training=training unit="text" />
            <Curves history=history />
            {move || summary.get().map(|s| view! { <Results summary=s /> })}
            <div class="head-io">
                <p data-testid="head-status">
                    {move || match head.get() {
                        Some(h) => format!("Trained head: {} ({})", h.labels.join(", "), h.encoder),
                        None => "No trained head yet.".to_string(),
                    }}
                </p>
                <button data-testid="head-export" on:click=export disabled=move || head.get().is_none()>
                    "Export head (head.safetensors + head.json)"
                </button>
                <label>
                    "Import a head: "
                    <input type="file" accept=".safetensors" data-testid="head-import" on:change=import />
                </label>
            </div>
        </section>
    }
}

/// Loss and accuracy per epoch, train and validation, as an SVG line chart.
#[component]
pub(super) fn Curves(history: ReadSignal<Vec<EpochReport>>) -> impl IntoView {
    const W: f64 = 320.0;
    const H: f64 = 120.0;
    let line = move |pick: fn(&EpochReport) -> f64, max: f64| {
        let h = history.get();
        let n = h.len().max(2) as f64 - 1.0;
        h.iter()
            .enumerate()
            .map(|(i, r)| {
                format!(
                    "{:.1},{:.1}",
                    i as f64 / n * W,
                    H - (pick(r) / max).clamp(0.0, 1.0) * H
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let max_loss = move || {
        history
            .get()
            .iter()
            .map(|r| r.train_loss.max(r.val_loss))
            .fold(1e-9, f64::max)
    };
    view! {
        <figure class="curves" data-testid="train-curves" data-epochs=move || history.get().len().to_string()>
            <svg viewBox=format!("0 0 {W} {H}") role="img" aria-label="Loss and accuracy per epoch">
                <polyline class="train-loss" fill="none" points=move || line(|r| r.train_loss, max_loss())></polyline>
                <polyline class="val-loss" fill="none" points=move || line(|r| r.val_loss, max_loss())></polyline>
                <polyline class="train-acc" fill="none" points=move || line(|r| r.train_accuracy, 1.0)></polyline>
                <polyline class="val-acc" fill="none" points=move || line(|r| r.val_accuracy, 1.0)></polyline>
            </svg>
            <figcaption>
                "Loss (train, validation) and accuracy (train, validation) per epoch. "
                {move || {
                    history
                        .get()
                        .last()
                        .map(|r| {
                            format!(
                                "Epoch {}: validation loss {:.3}, accuracy {:.1}%",
                                r.epoch,
                                r.val_loss,
                                r.val_accuracy * 100.0
                            )
                        })
                }}
            </figcaption>
        </figure>
    }
}

/// The kept head's validation metrics: accuracy, confusion matrix, per-class P/R/F1.
#[component]
pub(super) fn Results(summary: TrainSummary) -> impl IntoView {
    let m = summary.metrics.clone();
    let labels = summary.labels.clone();
    let how = if summary.cancelled {
        "cancelled; the best head so far is kept"
    } else if summary.stopped_early {
        "stopped early"
    } else {
        "all epochs"
    };
    view! {
        <div data-testid="train-metrics" data-val-accuracy=m.accuracy.to_string()>
            <p>
                {format!(
                    "Validation accuracy {:.1}%, macro F1 {:.3} (head from epoch {} of {}, {how}{}).",
                    m.accuracy * 100.0,
                    m.macro_f1,
                    summary.best_epoch,
                    summary.history.len(),
                    if summary.cached_embeddings { "; embeddings reused" } else { "" },
                )}
            </p>
            {summary.warnings.iter().map(|w| view! { <p class="note">{w.clone()}</p> }).collect_view()}
            <table class="confusion" data-testid="confusion-matrix" data-matrix=serde_json::to_string(&m.confusion).unwrap_or_default()>
                <caption>"Confusion matrix (rows: true class, columns: predicted)"</caption>
                <thead>
                    <tr><th></th>{labels.iter().map(|l| view! { <th scope="col">{l.clone()}</th> }).collect_view()}</tr>
                </thead>
                <tbody>
                    {m.confusion
                        .iter()
                        .zip(&labels)
                        .map(|(row, l)| {
                            view! {
                                <tr>
                                    <th scope="row">{l.clone()}</th>
                                    {row.iter().map(|v| view! { <td>{*v}</td> }).collect_view()}
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
            <table class="per-class">
                <thead><tr><th>"class"</th><th>"precision"</th><th>"recall"</th><th>"F1"</th><th>"support"</th></tr></thead>
                <tbody>
                    {m.per_class
                        .iter()
                        .map(|c| {
                            view! {
                                <tr>
                                    <th scope="row">{c.label.clone()}</th>
                                    <td>{format!("{:.3}", c.precision)}</td>
                                    <td>{format!("{:.3}", c.recall)}</td>
                                    <td>{format!("{:.3}", c.f1)}</td>
                                    <td>{c.support}</td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
}
