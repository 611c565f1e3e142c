//! BertViz's line view for one head: the tokens in two columns, a line from each token
//! (left, the query) to every token it attends to (right, the key), as dark as the weight.

use leptos::html::Canvas;
use leptos::prelude::*;

use super::draw;
use super::Attentions;

const WIDTH: f64 = 380.0;
const LEFT: f64 = 120.0;
const RIGHT: f64 = 260.0;
/// Weights below this draw nothing (a 128-token head has 16k of them, mostly tiny).
const MIN_WEIGHT: f32 = 0.01;

fn row_height(n: usize) -> f64 {
    (640.0 / n.max(1) as f64).clamp(5.0, 18.0)
}

#[component]
pub fn Lines(
    att: StoredValue<Attentions>,
    toks: StoredValue<Vec<String>>,
    layer: ReadSignal<usize>,
    head: ReadSignal<usize>,
) -> impl IntoView {
    let canvas = NodeRef::<Canvas>::new();
    // The query token under the pointer: only its lines are drawn.
    let (focus, set_focus) = signal(None::<usize>);
    let n = toks.with_value(Vec::len);

    Effect::new(move || {
        let (l, h, f) = (layer.get(), head.get(), focus.get());
        let Some(el) = canvas.get() else { return };
        att.with_value(|a| toks.with_value(|t| paint(&el, t, &a[l][h], f)));
    });

    let on_move = move |ev: leptos::ev::MouseEvent| {
        let (x, y) = (ev.offset_x() as f64, ev.offset_y() as f64 - 6.0);
        let i = (y / row_height(n)).floor();
        let f = (x < (LEFT + RIGHT) / 2.0 && i >= 0.0 && (i as usize) < n).then_some(i as usize);
        if f != focus.get_untracked() {
            set_focus.set(f);
        }
    };

    view! {
        <canvas
            node_ref=canvas
            data-testid="attention-lines"
            data-focus=move || focus.get().map(|f| f.to_string()).unwrap_or_default()
            role="img"
            aria-label=move || format!("Attention lines of layer {} head {}", layer.get() + 1, head.get() + 1)
            on:mousemove=on_move
            on:mouseleave=move |_| set_focus.set(None)
        ></canvas>
    }
}

fn paint(el: &web_sys::HtmlCanvasElement, tokens: &[String], m: &[Vec<f32>], focus: Option<usize>) {
    let n = tokens.len();
    let rh = row_height(n);
    let y = |i: usize| 6.0 + (i as f64 + 0.5) * rh;
    let Some(cx) = draw::context(el, WIDTH, 12.0 + rh * n as f64) else {
        return;
    };
    // Lines grouped by weight in 1/255 steps (the canvas keeps 8 bits of alpha anyway), so
    // the stroke style is set once per step rather than once per line; lines of one colour
    // add up the same whatever their order.
    let mut lines: Vec<(u8, u16, u16)> = Vec::new();
    for (q, row) in m.iter().enumerate().take(n) {
        if focus.is_some_and(|f| f != q) {
            continue;
        }
        for (k, &w) in row.iter().enumerate().take(n) {
            if w >= MIN_WEIGHT {
                lines.push(((w.min(1.0) * 255.0).round() as u8, q as u16, k as u16));
            }
        }
    }
    lines.sort_unstable_by_key(|&(b, _, _)| b);
    let mut current = None;
    for (b, q, k) in lines {
        if current != Some(b) {
            current = Some(b);
            let w = b as f64 / 255.0;
            cx.set_stroke_style_str(&format!("rgba(30, 80, 200, {w:.3})"));
            cx.set_line_width(if focus.is_some() { 1.0 + 3.0 * w } else { 1.0 + w });
        }
        cx.begin_path();
        cx.move_to(LEFT + 4.0, y(q as usize));
        cx.line_to(RIGHT - 4.0, y(k as usize));
        cx.stroke();
    }
    if rh < 8.0 {
        return;
    }
    let font = format!("{}px ui-monospace, monospace", rh.min(13.0).floor());
    cx.set_font(&font);
    cx.set_text_baseline("middle");
    for (i, t) in tokens.iter().enumerate() {
        let s = draw::short(t, 14);
        let strong = focus == Some(i);
        cx.set_fill_style_str(if strong { "#1e50c8" } else { "#888" });
        cx.set_text_align("right");
        let _ = cx.fill_text(&s, LEFT, y(i));
        cx.set_fill_style_str("#888");
        cx.set_text_align("left");
        let _ = cx.fill_text(&s, RIGHT, y(i));
    }
}
