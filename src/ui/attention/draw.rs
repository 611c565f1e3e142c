//! Canvas helpers shared by the attention views: a device-pixel-sharp context, the colour
//! scale, and RGBA images (one pixel per cell) put on a hidden canvas that is reused and
//! drawn scaled up without smoothing, which keeps a redraw to a handful of draw calls.

use wasm_bindgen::{Clamped, JsCast};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

pub fn device_pixel_ratio() -> f64 {
    web_sys::window().map_or(1.0, |w| w.device_pixel_ratio())
}

/// Sizes `el` to `w × h` CSS pixels at the device's resolution and returns its 2-D context,
/// cleared and scaled so that drawing uses CSS pixels. A canvas already of that size is not
/// resized (resizing reallocates its bitmap).
pub fn context(el: &HtmlCanvasElement, w: f64, h: f64) -> Option<CanvasRenderingContext2d> {
    let dpr = device_pixel_ratio();
    let (pw, ph) = ((w * dpr).ceil() as u32, (h * dpr).ceil() as u32);
    if el.width() != pw {
        el.set_width(pw);
    }
    if el.height() != ph {
        el.set_height(ph);
    }
    let style = el.style();
    let (sw, sh) = (format!("{w}px"), format!("{h}px"));
    if style.get_property_value("width").ok().as_deref() != Some(sw.as_str()) {
        let _ = style.set_property("width", &sw);
    }
    if style.get_property_value("height").ok().as_deref() != Some(sh.as_str()) {
        let _ = style.set_property("height", &sh);
    }
    let cx = context_2d(el)?;
    let _ = cx.set_transform(dpr, 0.0, 0.0, dpr, 0.0, 0.0);
    cx.clear_rect(0.0, 0.0, w, h);
    Some(cx)
}

fn context_2d(el: &HtmlCanvasElement) -> Option<CanvasRenderingContext2d> {
    el.get_context("2d")
        .ok()
        .flatten()
        .and_then(|c| c.dyn_into::<CanvasRenderingContext2d>().ok())
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

/// An RGBA image, one pixel per value, with the hidden canvas it is drawn from (made on the
/// first [`Pixels::blit`] and reused by every later one).
pub struct Pixels {
    pub width: usize,
    pub height: usize,
    pub rgba: Vec<u8>,
    staging: Option<(HtmlCanvasElement, CanvasRenderingContext2d)>,
}

impl Pixels {
    pub fn new(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            rgba: vec![0; width * height * 4],
            staging: None,
        }
    }

    pub fn set(&mut self, x: usize, y: usize, [r, g, b]: [u8; 3], a: u8) {
        let i = (y * self.width + x) * 4;
        self.rgba[i..i + 4].copy_from_slice(&[r, g, b, a]);
    }

    /// Paints `m` (rows × columns) with [`heat`] at `(x0, y0)`.
    pub fn matrix(&mut self, x0: usize, y0: usize, m: &[Vec<f32>]) {
        let w = self.width;
        for (y, row) in m.iter().enumerate().take(self.height.saturating_sub(y0)) {
            let start = ((y0 + y) * w + x0) * 4;
            let end = (y0 + y + 1) * w * 4;
            for (px, &v) in self.rgba[start..end].chunks_exact_mut(4).zip(row) {
                let [r, g, b] = heat(v);
                px.copy_from_slice(&[r, g, b, 255]);
            }
        }
    }

    fn image_data(&self) -> Option<web_sys::ImageData> {
        web_sys::ImageData::new_with_u8_clamped_array_and_sh(
            Clamped(&self.rgba[..]),
            self.width as u32,
            self.height as u32,
        )
        .ok()
    }

    /// Puts the image into `cx` unscaled, at `(x, y)` device pixels (the transform does not
    /// apply).
    pub fn put(&self, cx: &CanvasRenderingContext2d, x: f64, y: f64) {
        if self.width == 0 || self.height == 0 {
            return;
        }
        if let Some(img) = self.image_data() {
            let _ = cx.put_image_data(&img, x, y);
        }
    }

    /// Draws the image into `cx` at `(dx, dy)`, scaled to `dw × dh` CSS pixels, with hard
    /// cell edges.
    pub fn blit(&mut self, cx: &CanvasRenderingContext2d, dx: f64, dy: f64, dw: f64, dh: f64) {
        if self.width == 0 || self.height == 0 {
            return;
        }
        if self.staging.is_none() {
            let Some(off) = web_sys::window()
                .and_then(|w| w.document())
                .and_then(|d| d.create_element("canvas").ok())
                .and_then(|e| e.dyn_into::<HtmlCanvasElement>().ok())
            else {
                return;
            };
            off.set_width(self.width as u32);
            off.set_height(self.height as u32);
            let Some(ocx) = context_2d(&off) else { return };
            self.staging = Some((off, ocx));
        }
        let (Some((off, ocx)), Some(img)) = (&self.staging, self.image_data()) else {
            return;
        };
        let _ = ocx.put_image_data(&img, 0.0, 0.0);
        cx.set_image_smoothing_enabled(false);
        let _ = cx.draw_image_with_html_canvas_element_and_dw_and_dh(off, dx, dy, dw, dh);
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
