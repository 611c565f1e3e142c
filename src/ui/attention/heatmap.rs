//! One head as a token × token heatmap, with the value under the pointer.

use leptos::html::Canvas;
use leptos::prelude::*;

use super::draw::{self, Pixels};
use super::Attentions;

/// Cell size in CSS pixels: large for a sentence, down to 3 px so 128 tokens fit.
fn cell(n: usize) -> f64 {
    (560.0 / n.max(1) as f64).floor().clamp(3.0, 18.0)
}

/// Room for the token labels (none when the cells are too small to label).
fn margin(n: usize) -> f64 {
    if cell(n) >= 8.0 {
        90.0
    } else {
        4.0
    }
}

#[component]
pub fn Heatmap(
    att: StoredValue<Attentions>,
    toks: StoredValue<Vec<String>>,
    layer: ReadSignal<usize>,
    head: ReadSignal<usize>,
) -> impl IntoView {
    let canvas = NodeRef::<Canvas>::new();
    let (hover, set_hover) = signal(String::new());
    let n = toks.with_value(Vec::len);
    // One pixel per cell, refilled in place on every change.
    let pixels = StoredValue::new_local(Pixels::new(n, n));

    Effect::new(move || {
        let (l, h) = (layer.get(), head.get());
        let Some(el) = canvas.get() else { return };
        pixels.update_value(|px| att.with_value(|a| toks.with_value(|t| paint(&el, t, &a[l][h], px))));
    });

    let on_move = move |ev: leptos::ev::MouseEvent| {
        let (c, m) = (cell(n), margin(n));
        let (x, y) = (ev.offset_x() as f64 - m, ev.offset_y() as f64 - m);
        let (q, k) = ((y / c).floor(), (x / c).floor());
        if q < 0.0 || k < 0.0 || q as usize >= n || k as usize >= n {
            return set_hover.set(String::new());
        }
        let (q, k) = (q as usize, k as usize);
        let v = att.with_value(|a| a[layer.get_untracked()][head.get_untracked()][q][k]);
        toks.with_value(|t| set_hover.set(format!("“{}” attends to “{}”: {:.3}", t[q], t[k], v)));
    };

    view! {
        <canvas
            node_ref=canvas
            data-testid="attention-heatmap"
            data-layer=move || layer.get().to_string()
            data-head=move || head.get().to_string()
            role="img"
            aria-label=move || format!("Attention heatmap of layer {} head {}", layer.get() + 1, head.get() + 1)
            on:mousemove=on_move
            on:mouseleave=move |_| set_hover.set(String::new())
        ></canvas>
        <p class="note" data-testid="attention-hover" aria-live="polite">{hover}</p>
    }
}

fn paint(el: &web_sys::HtmlCanvasElement, tokens: &[String], m: &[Vec<f32>], px: &mut Pixels) {
    let n = tokens.len();
    let (c, mg) = (cell(n), margin(n));
    let size = mg + c * n as f64;
    let Some(cx) = draw::context(el, size, size) else {
        return;
    };
    px.matrix(0, 0, m);
    px.blit(&cx, mg, mg, c * n as f64, c * n as f64);
    if mg < 10.0 {
        return;
    }
    // Thin gaps between cells, as the eye reads cells better than a smooth field.
    cx.set_stroke_style_str("rgba(255,255,255,0.8)");
    cx.set_line_width(1.0);
    cx.begin_path();
    for i in 1..n {
        let at = mg + i as f64 * c - 0.5;
        cx.move_to(mg, at);
        cx.line_to(size, at);
        cx.move_to(at, mg);
        cx.line_to(at, size);
    }
    cx.stroke();
    cx.set_fill_style_str("#888");
    cx.set_font("11px ui-monospace, monospace");
    for (i, t) in tokens.iter().enumerate() {
        let s = draw::short(t, 10);
        let _ = cx.fill_text(&s, 2.0, mg + i as f64 * c + c * 0.7);
        cx.save();
        let _ = cx.translate(mg + i as f64 * c + c * 0.7, mg - 4.0);
        let _ = cx.rotate(-std::f64::consts::FRAC_PI_2);
        let _ = cx.fill_text(&s, 0.0, 0.0);
        cx.restore();
    }
}
