//! Canvas helpers shared by the attention views: a device-pixel-sharp context, the colour
//! scale, and blitting an RGBA matrix (one pixel per cell) scaled up without smoothing,
//! which keeps 12 layers × 12 heads × 128 tokens to a handful of draw calls.

use wasm_bindgen::{Clamped, JsCast};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

/// Sizes `el` to `w × h` CSS pixels at the device's resolution and returns its 2-D context,
/// scaled so that drawing uses CSS pixels.
pub fn context(el: &HtmlCanvasElement, w: f64, h: f64) -> Option<CanvasRenderingContext2d> {
    let dpr = web_sys::window().map_or(1.0, |w| w.device_pixel_ratio());
    el.set_width((w * dpr).ceil() as u32);
    el.set_height((h * dpr).ceil() as u32);
    let _ = el.set_attribute("style", &format!("width: {w}px; height: {h}px"));
    let cx = el
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|c| c.dyn_into::<CanvasRenderingContext2d>().ok())?;
    let _ = cx.scale(dpr, dpr);
    cx.clear_rect(0.0, 0.0, w, h);
    Some(cx)
}

/// White (0) to deep blue (1); the square root keeps small weights visible.
pub fn heat(v: f32) -> [u8; 3] {
    let t = (v.clamp(0.0, 1.0) as f64).sqrt();
    [
        (255.0 - 225.0 * t) as u8,
        (255.0 - 175.0 * t) as u8,
        (255.0 - 55.0 * t) as u8,
    ]
}

/// An RGBA image, one pixel per value.
pub struct Pixels {
    pub width: usize,
    pub height: usize,
    pub rgba: Vec<u8>,
}

impl Pixels {
    pub fn new(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            rgba: vec![0; width * height * 4],
        }
    }

    pub fn set(&mut self, x: usize, y: usize, [r, g, b]: [u8; 3], a: u8) {
        let i = (y * self.width + x) * 4;
        self.rgba[i..i + 4].copy_from_slice(&[r, g, b, a]);
    }

    /// Paints `m` (rows × columns) with [`heat`] at `(x0, y0)`.
    pub fn matrix(&mut self, x0: usize, y0: usize, m: &[Vec<f32>]) {
        for (y, row) in m.iter().enumerate() {
            for (x, &v) in row.iter().enumerate() {
                self.set(x0 + x, y0 + y, heat(v), 255);
            }
        }
    }

    /// Draws the image into `cx` at `(dx, dy)`, scaled to `dw × dh` CSS pixels, with hard
    /// cell edges.
    pub fn blit(&self, cx: &CanvasRenderingContext2d, dx: f64, dy: f64, dw: f64, dh: f64) {
        if self.width == 0 || self.height == 0 {
            return;
        }
        let Some(off) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.create_element("canvas").ok())
            .and_then(|e| e.dyn_into::<HtmlCanvasElement>().ok())
        else {
            return;
        };
        off.set_width(self.width as u32);
        off.set_height(self.height as u32);
        let Some(ocx) = off
            .get_context("2d")
            .ok()
            .flatten()
            .and_then(|c| c.dyn_into::<CanvasRenderingContext2d>().ok())
        else {
            return;
        };
        if let Ok(img) = web_sys::ImageData::new_with_u8_clamped_array_and_sh(
            Clamped(&self.rgba[..]),
            self.width as u32,
            self.height as u32,
        ) {
            let _ = ocx.put_image_data(&img, 0.0, 0.0);
            cx.set_image_smoothing_enabled(false);
            let _ = cx.draw_image_with_html_canvas_element_and_dw_and_dh(&off, dx, dy, dw, dh);
        }
    }
}

/// A token shortened for an axis label.
pub fn short(token: &str, max: usize) -> String {
    let mut s: String = token.chars().take(max).collect();
    if token.chars().count() > max {
        s.push('…');
    }
    s
}
