//! Small multiples: every layer × head as a thumbnail heatmap in one canvas (one blit), the
//! selected one outlined; a click selects another.

use leptos::html::Canvas;
use leptos::prelude::*;

use super::draw::{self, Pixels};
use super::Attentions;

/// Left and top margins for the layer and head numbers.
const MARGIN: f64 = 26.0;
const GAP: f64 = 4.0;

/// Thumbnail side in CSS pixels: the grid stays within about 720 px wide.
fn thumb(heads: usize, n: usize) -> f64 {
    ((720.0 - MARGIN) / heads.max(1) as f64 - GAP)
        .floor()
        .clamp(24.0, (n as f64 * 4.0).clamp(24.0, 96.0))
}

#[component]
pub fn Grid(
    att: StoredValue<Attentions>,
    layer: ReadSignal<usize>,
    head: ReadSignal<usize>,
    set_layer: WriteSignal<usize>,
    set_head: WriteSignal<usize>,
) -> impl IntoView {
    let canvas = NodeRef::<Canvas>::new();
    let (layers, heads, n) = att.with_value(|a| {
        let heads = a.first().map_or(0, Vec::len);
        let n = a.first().and_then(|l| l.first()).map_or(0, Vec::len);
        (a.len(), heads, n)
    });
    // Every thumbnail painted once, pixel per cell; redraws only re-blit and re-outline.
    let pixels = StoredValue::new(att.with_value(|a| {
        let mut px = Pixels::new(heads * (n + 1), layers * (n + 1));
        for (l, hs) in a.iter().enumerate() {
            for (h, m) in hs.iter().enumerate() {
                px.matrix(h * (n + 1), l * (n + 1), m);
            }
        }
        px
    }));

    Effect::new(move || {
        let (sl, sh) = (layer.get(), head.get());
        let Some(el) = canvas.get() else { return };
        let t = thumb(heads, n);
        let step = t + GAP;
        let (w, h) = (MARGIN + step * heads as f64, MARGIN + step * layers as f64);
        let Some(cx) = draw::context(&el, w, h) else {
            return;
        };
        // The pixel image has a 1-pixel gap per thumbnail; scaling it whole keeps the
        // thumbnails aligned with `step`.
        let scale = step / (n + 1) as f64;
        pixels.with_value(|px| {
            px.blit(
                &cx,
                MARGIN,
                MARGIN,
                px.width as f64 * scale,
                px.height as f64 * scale,
            )
        });
        cx.set_fill_style_str("#888");
        cx.set_font("11px system-ui, sans-serif");
        for l in 0..layers {
            let _ = cx.fill_text(
                &(l + 1).to_string(),
                4.0,
                MARGIN + l as f64 * step + t / 2.0 + 4.0,
            );
        }
        for hd in 0..heads {
            let _ = cx.fill_text(
                &(hd + 1).to_string(),
                MARGIN + hd as f64 * step + t / 2.0 - 4.0,
                16.0,
            );
        }
        cx.set_stroke_style_str("#e0542c");
        cx.set_line_width(2.0);
        cx.stroke_rect(
            MARGIN + sh as f64 * step - 2.0,
            MARGIN + sl as f64 * step - 2.0,
            n as f64 * scale + 4.0,
            n as f64 * scale + 4.0,
        );
    });

    let on_click = move |ev: leptos::ev::MouseEvent| {
        let step = thumb(heads, n) + GAP;
        let (x, y) = (ev.offset_x() as f64 - MARGIN, ev.offset_y() as f64 - MARGIN);
        if x < 0.0 || y < 0.0 {
            return;
        }
        let (h, l) = ((x / step) as usize, (y / step) as usize);
        if l < layers && h < heads {
            set_layer.set(l);
            set_head.set(h);
        }
    };

    view! {
        <canvas
            node_ref=canvas
            class="attention-grid"
            data-testid="attention-grid"
            data-layers=layers.to_string()
            data-heads=heads.to_string()
            role="img"
            aria-label=format!("Attention of all {layers} layers × {heads} heads; click one to select it")
            on:click=on_click
        ></canvas>
    }
}
