//! Small multiples: every layer × head as a thumbnail heatmap, the selected one outlined; a
//! click selects another. The thumbnails are drawn once per attention result (each one
//! area-averaged down to its size, so a lone `[CLS]` or `[SEP]` column still shows), into
//! one canvas; the outline lives on a second, transparent canvas on top, and a layer/head
//! change redraws only that.

use leptos::html::Canvas;
use leptos::prelude::*;
use web_sys::HtmlCanvasElement;

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

/// Source cells `[lo, hi)` averaged into each of `size` destination pixels along an axis of
/// `n` cells: several cells per pixel when shrinking, one when enlarging.
fn bins(n: usize, size: usize) -> Vec<(usize, usize)> {
    (0..size)
        .map(|i| {
            let lo = (i * n / size).min(n.saturating_sub(1));
            (lo, ((i + 1) * n / size).max(lo + 1).min(n))
        })
        .collect()
}

/// Every thumbnail at the device's resolution, as laid out on a `w × h` CSS-pixel canvas.
fn thumbnails(a: &Attentions, (w, h): (f64, f64), n: usize, t: f64, dpr: f64) -> Pixels {
    let mut px = Pixels::new((w * dpr).ceil() as usize, (h * dpr).ceil() as usize);
    let size = ((t * dpr).round() as usize).max(1);
    let bins = bins(n, size);
    let step = t + GAP;
    let mut sums = vec![0f32; size];
    for (l, hs) in a.iter().enumerate() {
        for (hd, m) in hs.iter().enumerate() {
            let x0 = ((MARGIN + hd as f64 * step) * dpr).round() as usize;
            let y0 = ((MARGIN + l as f64 * step) * dpr).round() as usize;
            for (y, &(r0, r1)) in bins.iter().enumerate() {
                sums.iter_mut().for_each(|s| *s = 0.0);
                for row in &m[r0..r1] {
                    for (s, &(c0, c1)) in sums.iter_mut().zip(&bins) {
                        *s += row[c0..c1].iter().sum::<f32>();
                    }
                }
                let i = ((y0 + y) * px.width + x0) * 4;
                for ((p, s), &(c0, c1)) in px.rgba[i..i + size * 4].chunks_exact_mut(4).zip(&sums).zip(&bins)
                {
                    let [r, g, b] = draw::heat(s / ((r1 - r0) * (c1 - c0)) as f32);
                    p.copy_from_slice(&[r, g, b, 255]);
                }
            }
        }
    }
    px
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
    let outline = NodeRef::<Canvas>::new();
    let (layers, heads, n) = att.with_value(|a| {
        let heads = a.first().map_or(0, Vec::len);
        let n = a.first().and_then(|l| l.first()).map_or(0, Vec::len);
        (a.len(), heads, n)
    });
    let t = thumb(heads, n);
    let step = t + GAP;
    // 2 px beyond the last gap, so the outline of the last row or column clears the border.
    let size = (
        MARGIN + step * heads as f64 + 2.0,
        MARGIN + step * layers as f64 + 2.0,
    );
    // The device pixel ratio the thumbnails were drawn at (0: not yet drawn).
    let drawn_at = StoredValue::new(0.0f64);

    let draw_thumbnails = move |el: &HtmlCanvasElement| {
        let Some(cx) = draw::context(el, size.0, size.1) else {
            return;
        };
        let dpr = draw::device_pixel_ratio();
        att.with_value(|a| thumbnails(a, size, n, t, dpr))
            .put(&cx, 0.0, 0.0);
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
        drawn_at.set_value(dpr);
    };

    // Once per result: the component is made anew for each.
    Effect::new(move || {
        if let Some(el) = canvas.get() {
            draw_thumbnails(&el);
        }
    });

    // Per selection: the outline only (and the thumbnails again if the page was zoomed).
    Effect::new(move || {
        let (sl, sh) = (layer.get(), head.get());
        let Some(el) = outline.get() else { return };
        let at = drawn_at.get_value();
        if at != 0.0 && at != draw::device_pixel_ratio() {
            if let Some(c) = canvas.get_untracked() {
                draw_thumbnails(&c);
            }
        }
        let Some(cx) = draw::context(&el, size.0, size.1) else {
            return;
        };
        cx.set_stroke_style_str("#e0542c");
        cx.set_line_width(2.0);
        cx.stroke_rect(
            MARGIN + sh as f64 * step - 2.0,
            MARGIN + sl as f64 * step - 2.0,
            t + 4.0,
            t + 4.0,
        );
    });

    let on_click = move |ev: leptos::ev::MouseEvent| {
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
        <div style="position: relative; width: max-content">
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
            <canvas
                node_ref=outline
                data-testid="attention-grid-outline"
                data-layer=move || layer.get().to_string()
                data-head=move || head.get().to_string()
                aria-hidden="true"
                style="position: absolute; left: 0; top: 0; pointer-events: none; background: transparent; border-color: transparent"
            ></canvas>
        </div>
    }
}
