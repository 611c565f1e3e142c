//! The attention explorer: pick a layer and a head, see its token × token attention as a
//! heatmap (row = the token that looks, column = the token it looks at), hover for values.

use leptos::html::Canvas;
use leptos::prelude::*;
use wasm_bindgen::JsCast;

/// `[layer][head][query][key]`
pub type Attentions = Vec<Vec<Vec<Vec<f32>>>>;

/// Cell size in CSS pixels; the canvas is drawn at device-pixel resolution.
const CELL: f64 = 18.0;
const LABELS: f64 = 90.0;

#[component]
pub fn AttentionExplorer(tokens: Vec<String>, attentions: Attentions) -> impl IntoView {
    let layers = attentions.len();
    let heads = attentions.first().map_or(0, Vec::len);
    let (layer, set_layer) = signal(layers.saturating_sub(1));
    let (head, set_head) = signal(0usize);
    let (hover, set_hover) = signal(String::new());
    let canvas = NodeRef::<Canvas>::new();
    let n = tokens.len();
    let att = StoredValue::new(attentions);
    let toks = StoredValue::new(tokens);

    // Redraw whenever the layer or head changes (and once the canvas exists).
    Effect::new(move || {
        let (l, h) = (layer.get(), head.get());
        let Some(el) = canvas.get() else { return };
        att.with_value(|a| toks.with_value(|t| draw(&el, t, &a[l][h])));
    });

    let on_move = move |ev: leptos::ev::MouseEvent| {
        let (x, y) = (ev.offset_x() as f64 - LABELS, ev.offset_y() as f64 - LABELS);
        if x < 0.0 || y < 0.0 {
            return set_hover.set(String::new());
        }
        let (q, k) = ((y / CELL) as usize, (x / CELL) as usize);
        if q >= n || k >= n {
            return set_hover.set(String::new());
        }
        let v = att.with_value(|a| a[layer.get_untracked()][head.get_untracked()][q][k]);
        toks.with_value(|t| set_hover.set(format!("“{}” attends to “{}”: {:.3}", t[q], t[k], v)));
    };
    let select = move |testid: &'static str,
                       label: &'static str,
                       count: usize,
                       value: ReadSignal<usize>,
                       set: WriteSignal<usize>| {
        view! {
            <label>
                {label}
                <select
                    data-testid=testid
                    prop:value=move || value.get().to_string()
                    on:change=move |ev| set.set(event_target_value(&ev).parse().unwrap_or(0))
                >
                    {(0..count).map(|i| view! { <option value=i.to_string()>{(i + 1).to_string()}</option> }).collect_view()}
                </select>
            </label>
        }
    };

    view! {
        <div class="attention">
            <p class="hint">
                "Self-attention: every token makes a query, a key and a value. A token's query is compared "
                "with every key; a softmax turns the scores into the weights below (each row sums to 1), and "
                "the token's new state is the weighted mix of the values. Each head learns its own "
                "queries and keys, so heads look for different things."
            </p>
            <div class="columns">
                {select("attention-layer", "Layer ", layers, layer, set_layer)}
                {select("attention-head", "Head ", heads, head, set_head)}
            </div>
            <canvas
                node_ref=canvas
                data-testid="attention-heatmap"
                data-layer=move || layer.get().to_string()
                data-head=move || head.get().to_string()
                role="img"
                aria-label=move || format!("Attention of layer {} head {}", layer.get() + 1, head.get() + 1)
                on:mousemove=on_move
                on:mouseleave=move |_| set_hover.set(String::new())
            ></canvas>
            <p class="note" data-testid="attention-hover" aria-live="polite">{hover}</p>
        </div>
    }
}

/// Paints one head's matrix with the tokens along both axes.
fn draw(el: &web_sys::HtmlCanvasElement, tokens: &[String], m: &[Vec<f32>]) {
    let n = tokens.len();
    let size = LABELS + CELL * n as f64;
    let dpr = web_sys::window().map_or(1.0, |w| w.device_pixel_ratio());
    el.set_width((size * dpr) as u32);
    el.set_height((size * dpr) as u32);
    let _ = el.set_attribute("style", &format!("width: {size}px; height: {size}px"));
    let Some(cx) = el
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|c| c.dyn_into::<web_sys::CanvasRenderingContext2d>().ok())
    else {
        return;
    };
    let _ = cx.scale(dpr, dpr);
    cx.clear_rect(0.0, 0.0, size, size);
    for (q, row) in m.iter().enumerate().take(n) {
        for (k, &v) in row.iter().enumerate().take(n) {
            // White (0) to deep blue (1); sqrt keeps small weights visible.
            let t = (v.clamp(0.0, 1.0) as f64).sqrt();
            let (r, g, b) = (255.0 - 225.0 * t, 255.0 - 175.0 * t, 255.0 - 55.0 * t);
            cx.set_fill_style_str(&format!("rgb({r:.0},{g:.0},{b:.0})"));
            cx.fill_rect(
                LABELS + k as f64 * CELL,
                LABELS + q as f64 * CELL,
                CELL - 1.0,
                CELL - 1.0,
            );
        }
    }
    cx.set_fill_style_str("#888");
    cx.set_font("11px ui-monospace, monospace");
    for (i, t) in tokens.iter().enumerate() {
        let short: String = t.chars().take(10).collect();
        let _ = cx.fill_text(&short, 2.0, LABELS + i as f64 * CELL + CELL * 0.7);
        cx.save();
        let _ = cx.translate(LABELS + i as f64 * CELL + CELL * 0.7, LABELS - 4.0);
        let _ = cx.rotate(-std::f64::consts::FRAC_PI_2);
        let _ = cx.fill_text(&short, 0.0, 0.0);
        cx.restore();
    }
}
