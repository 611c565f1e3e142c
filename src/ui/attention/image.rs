//! For a ViT: where the `[CLS]` token looks in the picture. Its attention over the patches,
//! for the selected head or rolled out through every layer (engine/explain.rs), is drawn
//! over the image as a heat overlay.

use leptos::html::{Canvas, Img};
use leptos::prelude::*;

use super::draw::{self, Pixels};
use super::Attentions;
use crate::engine::explain::{attention_rollout, cls_patch_grid};

const SIZE: f64 = 280.0;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Head,
    Rollout,
}

#[component]
pub fn ImageAttention(
    url: String,
    att: StoredValue<Attentions>,
    layer: ReadSignal<usize>,
    head: ReadSignal<usize>,
) -> impl IntoView {
    let canvas = NodeRef::<Canvas>::new();
    let img = NodeRef::<Img>::new();
    let (loaded, set_loaded) = signal(false);
    let (mode, set_mode) = signal(Mode::Head);
    let n = att.with_value(|a| a.first().and_then(|l| l.first()).map_or(0, Vec::len));
    let side = (((n.max(1) - 1) as f64).sqrt().round()) as usize;
    let rollout = StoredValue::new(att.with_value(|a| attention_rollout(a)));

    Effect::new(move || {
        let (l, h, m, ready) = (layer.get(), head.get(), mode.get(), loaded.get());
        let (Some(el), Some(im)) = (canvas.get(), img.get()) else {
            return;
        };
        let Some(cx) = draw::context(&el, SIZE, SIZE) else {
            return;
        };
        if ready {
            cx.set_image_smoothing_enabled(true);
            let _ = cx.draw_image_with_html_image_element_and_dw_and_dh(&im, 0.0, 0.0, SIZE, SIZE);
        }
        let grid = match m {
            Mode::Head => att.with_value(|a| cls_patch_grid(&a[l][h], side)),
            Mode::Rollout => rollout.with_value(|r| cls_patch_grid(r, side)),
        };
        let Some(grid) = grid else { return };
        let mut px = Pixels::new(side, side);
        for (y, row) in grid.iter().enumerate() {
            for (x, &v) in row.iter().enumerate() {
                // Warm colour, opaque where the attention is strong, clear where it is not.
                px.set(x, y, [230, 60, 20], (v.clamp(0.0, 1.0) * 200.0) as u8);
            }
        }
        px.blit(&cx, 0.0, 0.0, SIZE, SIZE);
    });

    view! {
        <section class="image-attention">
            <h4>"Where [CLS] looks"</h4>
            <div class="columns">
                <label>
                    "Show "
                    <select
                        data-testid="attention-image-mode"
                        on:change=move |ev| set_mode.set(if event_target_value(&ev) == "rollout" { Mode::Rollout } else { Mode::Head })
                    >
                        <option value="head">"the selected layer and head"</option>
                        <option value="rollout">"attention rollout (all layers)"</option>
                    </select>
                </label>
            </div>
            <img node_ref=img src=url alt="" hidden on:load=move |_| set_loaded.set(true) />
            <canvas
                node_ref=canvas
                data-testid="attention-image"
                data-mode=move || if mode.get() == Mode::Rollout { "rollout" } else { "head" }
                data-side=side.to_string()
                role="img"
                aria-label="The image with the [CLS] token's attention over its patches"
            ></canvas>
            <p class="note">
                "The classifier reads only the [CLS] token, so where [CLS] attends is where the "
                "prediction draws from. Rollout multiplies the layers' attention (heads averaged, "
                "plus the residual connection) to follow it from the pixels to the last layer."
            </p>
        </section>
    }
}
