//! Image preprocessing that reproduces Hugging Face `ViTImageProcessor` (transformers 5,
//! PIL backend) exactly, so pixel values match the Python reference a model was checked
//! against.
//!
//! Decoding follows `transformers.image_utils.load_image`: PIL `Image.open`, then
//! `ImageOps.exif_transpose`, then `convert("RGB")`. Resizing is a port of Pillow 13's
//! `Image.resize` (`libImaging/Resample.c` for the convolution filters, the affine
//! nearest-neighbour path in `Geometry.c` for `NEAREST`), including its 8-bit fixed-point
//! coefficients and its uint8 intermediate image, because the `image` crate's resize gives
//! different pixels. Rescale and normalize then follow transformers' numpy code
//! (`image_transforms.rescale` / `normalize`) down to the float types.

use std::collections::BTreeMap;
use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};
use serde::{Deserialize, Deserializer};

use crate::engine::EngineError;

/// Name used in errors about a config that did not come from a file.
const CONFIG_FILE: &str = "preprocessor_config.json";

/// Target size of the resize, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawSize")]
pub struct Size {
    pub height: u32,
    pub width: u32,
}

/// What `size` may look like in a config: a number (square, as transformers'
/// `get_size_dict` reads it for ViT) or a dict.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawSize {
    Square(u32),
    Dict(BTreeMap<String, serde_json::Value>),
}

impl TryFrom<RawSize> for Size {
    type Error = String;

    fn try_from(raw: RawSize) -> Result<Self, String> {
        let dict = match raw {
            RawSize::Square(n) => return Ok(Size { height: n, width: n }),
            RawSize::Dict(dict) => dict,
        };
        // transformers prefers shortest_edge / max_height over height+width, so any other
        // key would change the output size: refuse it rather than resize differently.
        if let Some((key, _)) = dict
            .iter()
            .find(|(k, v)| !v.is_null() && k.as_str() != "height" && k.as_str() != "width")
        {
            return Err(format!(
                "size key \"{key}\" is not supported (only {{\"height\", \"width\"}} or a number)"
            ));
        }
        let get = |key: &str| -> Result<u32, String> {
            let value = dict.get(key).filter(|v| !v.is_null());
            let value = value.ok_or_else(|| format!("size has no \"{key}\""))?;
            value
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| format!("size \"{key}\" is not a pixel count: {value}"))
        };
        Ok(Size {
            height: get("height")?,
            width: get("width")?,
        })
    }
}

/// Parsed preprocessor_config.json, with transformers' ViT defaults for missing fields.
#[derive(Clone, Debug, Deserialize)]
pub struct PreprocessorConfig {
    #[serde(default = "yes")]
    pub do_resize: bool,
    #[serde(default = "default_size")]
    pub size: Size,
    /// PIL filter id: 0 nearest, 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming,
    /// 6 MKS2013, 7 MKS2021.
    #[serde(default = "default_resample")]
    pub resample: u32,
    #[serde(default = "yes")]
    pub do_rescale: bool,
    #[serde(default = "default_rescale_factor")]
    pub rescale_factor: f64,
    #[serde(default = "yes")]
    pub do_normalize: bool,
    #[serde(default = "default_half", deserialize_with = "per_channel")]
    pub image_mean: Vec<f32>,
    #[serde(default = "default_half", deserialize_with = "per_channel")]
    pub image_std: Vec<f32>,
    /// Only matters for inputs with alpha, which [`decode_rgb`] never returns.
    #[serde(default)]
    pub do_convert_rgb: Option<bool>,
}

fn yes() -> bool {
    true
}
fn default_size() -> Size {
    Size {
        height: 224,
        width: 224,
    }
}
fn default_resample() -> u32 {
    2
}
fn default_rescale_factor() -> f64 {
    1.0 / 255.0
}
fn default_half() -> Vec<f32> {
    vec![0.5; 3]
}

/// transformers accepts one number for all channels as well as a list.
fn per_channel<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(f32),
        Many(Vec<f32>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(v) => vec![v; 3],
        OneOrMany::Many(v) => v,
    })
}

impl PreprocessorConfig {
    /// Parses a preprocessor_config.json. Refuses settings this port does not reproduce
    /// (center crop, shortest-edge sizes) instead of giving the model different pixels.
    pub fn from_json(file: &str, bytes: &[u8]) -> Result<Self, EngineError> {
        let err = |reason: String| EngineError::Config {
            file: file.to_string(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| err(format!("not valid JSON: {e}")))?;
        if value.get("do_center_crop").and_then(|v| v.as_bool()) == Some(true) {
            return Err(err("do_center_crop is not supported".into()));
        }
        let cfg: Self = serde_json::from_value(value).map_err(|e| err(e.to_string()))?;
        cfg.validate().map_err(err)?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), String> {
        if self.do_resize {
            if self.size.height == 0 || self.size.width == 0 {
                return Err(format!("size {}x{} is empty", self.size.height, self.size.width));
            }
            filter(self.resample)?;
        }
        if self.do_normalize && (self.image_mean.len() != 3 || self.image_std.len() != 3) {
            return Err(format!(
                "image_mean and image_std need 3 values (RGB), got {} and {}",
                self.image_mean.len(),
                self.image_std.len()
            ));
        }
        Ok(())
    }
}

/// Decodes JPEG/PNG/WebP/GIF (first frame), applies the EXIF orientation and converts
/// to 8-bit RGB the way PIL's `convert("RGB")` does: alpha is dropped (not composited),
/// palettes are looked up, 16-bit samples are reduced as PIL reduces them.
pub fn decode_rgb(file: &str, bytes: &[u8]) -> Result<RgbImage, EngineError> {
    let err = |reason: String| EngineError::Image {
        file: file.to_string(),
        reason,
    };
    if bytes.is_empty() {
        return Err(err("the file is empty".into()));
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| err(e.to_string()))?;
    let format = match reader.format() {
        Some(f @ (ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP | ImageFormat::Gif)) => f,
        Some(f) => {
            return Err(err(format!(
                "{f:?} images are not supported (use JPEG, PNG, WebP or GIF)"
            )))
        }
        None => return Err(err("not a JPEG, PNG, WebP or GIF image".into())),
    };
    let mut decoder = reader.into_decoder().map_err(|e| err(e.to_string()))?;
    let orientation = orientation(&mut decoder);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| err(e.to_string()))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(err("the image has no pixels".into()));
    }
    img.apply_orientation(orientation);
    // PIL opens 16-bit grayscale PNG as "I;16" even with a tRNS chunk (which the png crate
    // turns into an alpha channel), and converts it to RGB by clipping, not scaling.
    let png_gray16 = format == ImageFormat::Png && bytes.len() > 25 && bytes[24] == 16 && bytes[25] == 0;
    Ok(to_rgb_like_pil(img, png_gray16))
}

/// PIL's `exif_transpose` orientation: the EXIF tag, else `tiff:Orientation` in XMP.
/// Unreadable metadata means no rotation (PIL would not rotate either).
fn orientation(decoder: &mut impl ImageDecoder) -> Orientation {
    if let Ok(Some(exif)) = decoder.exif_metadata() {
        // Some writers keep the JPEG marker's "Exif\0\0" prefix in PNG/WebP chunks; PIL
        // reads both.
        let tiff = exif.strip_prefix(b"Exif\0\0").unwrap_or(&exif);
        if let Some(o) = Orientation::from_exif_chunk(tiff) {
            return o;
        }
    }
    if let Ok(Some(xmp)) = decoder.xmp_metadata() {
        for pattern in [&b"tiff:Orientation=\""[..], &b"tiff:Orientation>"[..]] {
            if let Some(at) = xmp.windows(pattern.len()).position(|w| w == pattern) {
                if let Some(&digit) = xmp.get(at + pattern.len()) {
                    if digit.is_ascii_digit() {
                        return Orientation::from_exif(digit - b'0').unwrap_or(Orientation::NoTransforms);
                    }
                }
            }
        }
    }
    Orientation::NoTransforms
}

fn to_rgb_like_pil(img: DynamicImage, png_gray16: bool) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    let pack = |samples: Vec<u8>| RgbImage::from_raw(w, h, samples).expect("3 samples per pixel");
    // PIL keeps the high byte of 16-bit RGB(A)/LA PNG samples ("RGB;16B" raw modes), but
    // clips "I;16" grayscale at 255 (Convert.c I16_RGB).
    let gray16 = |v: u16| {
        if png_gray16 {
            v.min(255) as u8
        } else {
            (v >> 8) as u8
        }
    };
    let high = |v: u16| (v >> 8) as u8;
    match img {
        DynamicImage::ImageRgb8(rgb) => rgb,
        DynamicImage::ImageRgba8(i) => pack(i.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect()),
        DynamicImage::ImageLuma8(i) => pack(i.iter().flat_map(|&v| [v; 3]).collect()),
        DynamicImage::ImageLumaA8(i) => pack(i.chunks_exact(2).flat_map(|p| [p[0]; 3]).collect()),
        DynamicImage::ImageLuma16(i) => pack(i.iter().flat_map(|&v| [gray16(v); 3]).collect()),
        DynamicImage::ImageLumaA16(i) => pack(i.chunks_exact(2).flat_map(|p| [gray16(p[0]); 3]).collect()),
        DynamicImage::ImageRgb16(i) => pack(i.iter().map(|&v| high(v)).collect()),
        DynamicImage::ImageRgba16(i) => pack(
            i.chunks_exact(4)
                .flat_map(|p| [high(p[0]), high(p[1]), high(p[2])])
                .collect(),
        ),
        // Not produced by the four supported decoders.
        other => other.to_rgb8(),
    }
}

/// Resizes, rescales and normalizes like `ViTImageProcessor`; returns CHW f32 values,
/// `[3, height, width]` flattened (the input's size when `do_resize` is off).
pub fn preprocess(img: &RgbImage, cfg: &PreprocessorConfig) -> Result<Vec<f32>, EngineError> {
    cfg.validate().map_err(config_error)?;
    let resized;
    let img = if cfg.do_resize {
        resized = resize(img, cfg.size.width, cfg.size.height, cfg.resample)?;
        &resized
    } else {
        img
    };
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut out = vec![0f32; 3 * w * h];
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            // rescale: float64 multiply, then cast to float32; normalize: float32 ops.
            let mut v = if cfg.do_rescale {
                (f64::from(p.0[c]) * cfg.rescale_factor) as f32
            } else {
                f32::from(p.0[c])
            };
            if cfg.do_normalize {
                v = (v - cfg.image_mean[c]) / cfg.image_std[c];
            }
            out[c * w * h + i] = v;
        }
    }
    Ok(out)
}

/// [`decode_rgb`] then [`preprocess`].
pub fn preprocess_bytes(file: &str, bytes: &[u8], cfg: &PreprocessorConfig) -> Result<Vec<f32>, EngineError> {
    preprocess(&decode_rgb(file, bytes)?, cfg)
}

fn config_error(reason: String) -> EngineError {
    EngineError::Config {
        file: CONFIG_FILE.to_string(),
        reason,
    }
}

/// PIL's `Image.resize((width, height), resample)` on an RGB image, pixel for pixel.
pub fn resize(img: &RgbImage, width: u32, height: u32, resample: u32) -> Result<RgbImage, EngineError> {
    if width == 0 || height == 0 {
        return Err(config_error(format!("cannot resize to {width}x{height}")));
    }
    if img.width() == 0 || img.height() == 0 {
        return Err(EngineError::Input("cannot resize an image with no pixels".into()));
    }
    if img.dimensions() == (width, height) {
        return Ok(img.clone());
    }
    if resample == 0 {
        return Ok(resize_nearest(img, width, height));
    }
    let filter = filter(resample).map_err(config_error)?;
    Ok(resample_convolution(img, width, height, filter))
}

/// A Pillow resampling filter: kernel and support radius at scale 1.
#[derive(Clone, Copy)]
struct Filter {
    kernel: fn(f64) -> f64,
    support: f64,
}

fn filter(resample: u32) -> Result<Filter, String> {
    let (kernel, support): (fn(f64) -> f64, f64) = match resample {
        0 => (box_kernel, 0.5), // nearest has its own path; any filter validates it
        1 => (lanczos_kernel, 3.0),
        2 => (bilinear_kernel, 1.0),
        3 => (bicubic_kernel, 2.0),
        4 => (box_kernel, 0.5),
        5 => (hamming_kernel, 1.0),
        6 => (mks2013_kernel, 2.5),
        7 => (mks2021_kernel, 4.5),
        _ => return Err(format!("resample {resample} is not a PIL filter (0-7)")),
    };
    Ok(Filter { kernel, support })
}

// The kernels are written as in Resample.c, operation for operation, so the f64
// coefficients round the same way.

fn box_kernel(x: f64) -> f64 {
    if x > -0.5 && x <= 0.5 {
        1.0
    } else {
        0.0
    }
}

fn bilinear_kernel(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

fn hamming_kernel(x: f64) -> f64 {
    let x = x.abs();
    if x == 0.0 {
        return 1.0;
    }
    if x >= 1.0 {
        return 0.0;
    }
    let x = x * std::f64::consts::PI;
    // C: sin(x) / x * (0.54f + 0.46f * cos(x)), with float constants.
    x.sin() / x * (f64::from(0.54f32) + f64::from(0.46f32) * x.cos())
}

fn bicubic_kernel(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        return 1.0;
    }
    let x = x * std::f64::consts::PI;
    x.sin() / x
}

fn lanczos_kernel(x: f64) -> f64 {
    if (-3.0..3.0).contains(&x) {
        sinc(x) * sinc(x / 3.0)
    } else {
        0.0
    }
}

fn mks2013_kernel(x: f64) -> f64 {
    let x = x.abs();
    if x < 0.5 {
        17.0 / 16.0 - 7.0 / 4.0 * (x * x)
    } else if x < 1.5 {
        (1.0 - x) * (7.0 / 4.0 - x)
    } else if x < 2.5 {
        let d = x - 5.0 / 2.0;
        -1.0 / 8.0 * (d * d)
    } else {
        0.0
    }
}

fn mks2021_kernel(x: f64) -> f64 {
    let x = x.abs();
    if x < 0.5 {
        577.0 / 576.0 - 239.0 / 144.0 * (x * x)
    } else if x < 1.5 {
        35.0 / 36.0 * (x - 1.0) * (x - 239.0 / 140.0)
    } else if x < 2.5 {
        1.0 / 6.0 * (x - 2.0) * (65.0 / 24.0 - x)
    } else if x < 3.5 {
        1.0 / 36.0 * (x - 3.0) * (x - 15.0 / 4.0)
    } else if x < 4.5 {
        let d = x - 9.0 / 2.0;
        -1.0 / 288.0 * (d * d)
    } else {
        0.0
    }
}

/// Pillow's PRECISION_BITS: 8 bits of result, 2 bits of headroom for kernels that
/// overshoot, in a 32-bit accumulator.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Per output pixel: the first input index, and fixed-point weights for the inputs from
/// there on (`precompute_coeffs` + `normalize_coeffs_8bpc`).
struct Coeffs {
    bounds: Vec<(usize, usize)>,
    weights: Vec<Vec<i32>>,
}

fn precompute_coeffs(in_size: u32, out_size: u32, filter: Filter) -> Coeffs {
    // The resize box is (0, 0, in_w, in_h) as floats: in0 = 0, in1 = in_size.
    let in0 = 0f32;
    let in1 = in_size as f32;
    let scale = f64::from(in1 - in0) / f64::from(out_size);
    let filterscale = scale.max(1.0);
    let support = filter.support * filterscale;
    let inv_filterscale = 1.0 / filterscale;
    let mut bounds = Vec::with_capacity(out_size as usize);
    let mut weights = Vec::with_capacity(out_size as usize);
    for xx in 0..out_size {
        let center = f64::from(in0) + (f64::from(xx) + 0.5) * scale;
        // C truncates toward zero when converting to int.
        let xmin = ((center - support + 0.5) as i32).max(0);
        let xmax = ((center + support + 0.5) as i32).min(in_size as i32) - xmin;
        let mut k: Vec<f64> = (0..xmax)
            .map(|x| (filter.kernel)((f64::from(x + xmin) - center + 0.5) * inv_filterscale))
            .collect();
        let ww: f64 = k.iter().fold(0.0, |acc, w| acc + w);
        if ww != 0.0 {
            k.iter_mut().for_each(|w| *w /= ww);
        }
        let fixed = k
            .iter()
            .map(|&w| {
                let scaled = w * f64::from(1u32 << PRECISION_BITS);
                if w < 0.0 {
                    (-0.5 + scaled) as i32
                } else {
                    (0.5 + scaled) as i32
                }
            })
            .collect();
        bounds.push((xmin as usize, xmax.max(0) as usize));
        weights.push(fixed);
    }
    Coeffs { bounds, weights }
}

/// Rounds a fixed-point accumulator to a byte: Pillow's `clip8`.
fn clip8(ss: i64) -> u8 {
    (ss >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Horizontal pass over `rows` rows of an RGB buffer `src_w` pixels wide, starting at
/// row `row_offset`.
fn horizontal_pass(src: &[u8], src_w: usize, row_offset: usize, rows: usize, c: &Coeffs) -> Vec<u8> {
    let out_w = c.bounds.len();
    let mut out = vec![0u8; out_w * rows * 3];
    for (yy, out_line) in out.chunks_exact_mut(out_w * 3).enumerate() {
        let line = &src[(yy + row_offset) * src_w * 3..][..src_w * 3];
        for ((&(xmin, n), k), px_out) in c.bounds.iter().zip(&c.weights).zip(out_line.chunks_exact_mut(3)) {
            let mut ss = [1i64 << (PRECISION_BITS - 1); 3];
            for (px, &kx) in line[xmin * 3..][..n * 3].chunks_exact(3).zip(k) {
                for ch in 0..3 {
                    ss[ch] += i64::from(px[ch]) * i64::from(kx);
                }
            }
            for ch in 0..3 {
                px_out[ch] = clip8(ss[ch]);
            }
        }
    }
    out
}

/// Vertical pass over an RGB buffer `w` pixels wide.
fn vertical_pass(src: &[u8], w: usize, c: &Coeffs) -> Vec<u8> {
    let row = w * 3;
    let mut out = vec![0u8; row * c.bounds.len()];
    for ((&(ymin, n), k), out_line) in c.bounds.iter().zip(&c.weights).zip(out.chunks_exact_mut(row)) {
        for (i, sample) in out_line.iter_mut().enumerate() {
            let mut ss = 1i64 << (PRECISION_BITS - 1);
            for (y, &ky) in k.iter().enumerate().take(n) {
                ss += i64::from(src[(ymin + y) * row + i]) * i64::from(ky);
            }
            *sample = clip8(ss);
        }
    }
    out
}

/// `ImagingResampleInner`: two separable passes through a uint8 intermediate, in the
/// order Pillow picks.
fn resample_convolution(img: &RgbImage, width: u32, height: u32, filter: Filter) -> RgbImage {
    let (in_w, in_h) = img.dimensions();
    let (w, h) = (width as usize, height as usize);
    // Pillow runs the vertical pass first when height shrinks more than twice as much as
    // width, and each pass rounds to uint8, so the order changes pixels.
    let dy = i64::from(in_h) - i64::from(height);
    let dx = i64::from(in_w) - i64::from(width);
    let horizontal_first = !(dy > 0 && dy > dx * 2);
    let mut vert = precompute_coeffs(in_h, height, filter);
    let horiz = precompute_coeffs(in_w, width, filter);
    let src = img.as_raw();
    let out = match (width != in_w, height != in_h) {
        (false, false) => src.clone(),
        (true, false) => horizontal_pass(src, in_w as usize, 0, h, &horiz),
        (false, true) => vertical_pass(src, w, &vert),
        (true, true) if horizontal_first => {
            // Only the rows the vertical pass reads are resampled horizontally.
            let first = vert.bounds[0].0;
            let (last_min, last_n) = vert.bounds[h - 1];
            for b in &mut vert.bounds {
                b.0 -= first;
            }
            let tmp = horizontal_pass(src, in_w as usize, first, last_min + last_n - first, &horiz);
            vertical_pass(&tmp, w, &vert)
        }
        (true, true) => {
            let tmp = vertical_pass(src, in_w as usize, &vert);
            horizontal_pass(&tmp, in_w as usize, 0, h, &horiz)
        }
    };
    RgbImage::from_raw(width, height, out).expect("buffer matches its size")
}

/// PIL's NEAREST resize: `ImagingScaleAffine` with the source position accumulated in
/// f64 (not recomputed per pixel) and truncated, exactly as Geometry.c does.
fn resize_nearest(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (in_w, in_h) = img.dimensions();
    // a[0] = (double)(box[2] - box[0]) / xsize, with the box in f32.
    let a0 = f64::from(in_w as f32) / f64::from(width);
    let a4 = f64::from(in_h as f32) / f64::from(height);
    let positions = |step: f64, n: u32, limit: u32| -> Vec<Option<u32>> {
        let mut pos = step * 0.5;
        (0..n)
            .map(|_| {
                let i = if pos < 0.0 { -1 } else { pos as i64 };
                pos += step;
                (0..i64::from(limit)).contains(&i).then_some(i as u32)
            })
            .collect()
    };
    let xs = positions(a0, width, in_w);
    let ys = positions(a4, height, in_h);
    // Pixels mapped outside the source stay black (the transform's fill).
    RgbImage::from_fn(width, height, |x, y| match (xs[x as usize], ys[y as usize]) {
        (Some(xi), Some(yi)) => *img.get_pixel(xi, yi),
        _ => image::Rgb([0, 0, 0]),
    })
}
