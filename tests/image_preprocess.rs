//! Image preprocessing against Hugging Face `ViTImageProcessor` (transformers 5, PIL
//! backend). Goldens come from tests/fixtures/make_image_goldens.py; see its docstring.

use std::collections::BTreeMap;
use std::path::Path;

use image::RgbImage;
use serde::Deserialize;
use webformer::engine::image::{decode_rgb, preprocess, preprocess_bytes, resize, PreprocessorConfig};
use webformer::engine::EngineError;

const DIR: &str = "tests/fixtures/images";

#[derive(Deserialize)]
struct Index {
    images: Vec<ImageEntry>,
    configs: BTreeMap<String, serde_json::Value>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct ImageEntry {
    file: String,
    width: u32,
    height: u32,
    decoded_offset: usize,
}

#[derive(Deserialize)]
struct Case {
    image: String,
    config: String,
    height: u32,
    width: u32,
    resized_offset: usize,
    values_offset: usize,
}

struct Goldens {
    index: Index,
    blob: Vec<u8>,
}

impl Goldens {
    fn load() -> Self {
        let index = serde_json::from_slice(&read("goldens.json")).expect("goldens.json parses");
        Goldens {
            index,
            blob: read("goldens.bin"),
        }
    }

    fn image(&self, file: &str) -> &ImageEntry {
        self.index
            .images
            .iter()
            .find(|i| i.file == file)
            .expect("image in index")
    }

    /// PIL's decoded pixels (after exif_transpose + convert("RGB")).
    fn decoded(&self, entry: &ImageEntry) -> RgbImage {
        let len = (entry.width * entry.height * 3) as usize;
        let raw = self.blob[entry.decoded_offset..][..len].to_vec();
        RgbImage::from_raw(entry.width, entry.height, raw).unwrap()
    }

    fn resized(&self, case: &Case) -> RgbImage {
        let len = (case.width * case.height * 3) as usize;
        let raw = self.blob[case.resized_offset..][..len].to_vec();
        RgbImage::from_raw(case.width, case.height, raw).unwrap()
    }

    fn values(&self, case: &Case) -> Vec<f32> {
        let len = (case.width * case.height * 3) as usize;
        self.blob[case.values_offset..][..len * 4]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }

    fn config(&self, name: &str) -> PreprocessorConfig {
        let json = serde_json::to_vec(&self.index.configs[name]).unwrap();
        PreprocessorConfig::from_json(name, &json).expect("golden config parses")
    }
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(DIR).join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// JPEG is decoded by zune-jpeg, not PIL's libjpeg-turbo: their IDCT, chroma upsampling
/// and YCbCr rounding differ, so pixels may be a few levels off (all else is exact).
fn inexact_decoder(file: &str) -> bool {
    file.ends_with(".jpg")
}

/// Largest and mean absolute difference of two 8-bit images of the same size.
fn level_diff(a: &RgbImage, b: &RgbImage) -> (u8, f64) {
    assert_eq!(a.dimensions(), b.dimensions());
    let d: Vec<u8> = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| x.abs_diff(*y))
        .collect();
    let mean = d.iter().map(|&x| f64::from(x)).sum::<f64>() / d.len() as f64;
    (d.into_iter().max().unwrap(), mean)
}

/// JPEG tolerance, measured on these deliberately noisy images (natural photos do better):
/// at most 10 levels anywhere, under one level on average; a wrong orientation or colour
/// conversion would blow the mean.
const JPEG_MAX_LEVELS: u8 = 10;
const JPEG_MEAN_LEVELS: f64 = 1.0;

#[test]
fn decoding_matches_pil() {
    let g = Goldens::load();
    for entry in &g.index.images {
        let ours = decode_rgb(&entry.file, &read(&entry.file)).unwrap();
        assert_eq!(
            ours.dimensions(),
            (entry.width, entry.height),
            "{}: size after EXIF",
            entry.file
        );
        let (max, mean) = level_diff(&ours, &g.decoded(entry));
        println!("{}: |decoded - PIL| max {max}, mean {mean:.3}", entry.file);
        if inexact_decoder(&entry.file) {
            assert!(
                max <= JPEG_MAX_LEVELS && mean <= JPEG_MEAN_LEVELS,
                "{}: max {max} mean {mean}",
                entry.file
            );
        } else {
            assert_eq!(max, 0, "{}: decoded pixels differ from PIL", entry.file);
        }
    }
}

#[test]
fn resize_and_values_match_pil_on_pil_pixels() {
    let g = Goldens::load();
    assert!(g.index.cases.len() > 40);
    for case in &g.index.cases {
        let cfg = g.config(&case.config);
        let pil = g.decoded(g.image(&case.image));
        let what = format!("{} / {}", case.image, case.config);
        if cfg.do_resize {
            let ours = resize(&pil, cfg.size.width, cfg.size.height, cfg.resample).unwrap();
            let golden = g.resized(case);
            assert_eq!(ours.dimensions(), golden.dimensions(), "{what}");
            let wrong = ours
                .as_raw()
                .iter()
                .zip(golden.as_raw())
                .filter(|(a, b)| a != b)
                .count();
            assert_eq!(wrong, 0, "{what}: {wrong} resized samples differ from PIL");
        }
        // The brief asks for 1e-6; the values are in fact identical, and demanding that
        // also catches float-order slips (f32 rescale, f64 normalize) that 1e-6 lets by.
        let values = preprocess(&pil, &cfg).unwrap();
        let diff = max_abs_diff(&values, &g.values(case));
        assert!(diff == 0.0, "{what}: max |pixel_values - reference| = {diff}");
    }
}

#[test]
fn bytes_to_values_match_reference() {
    let g = Goldens::load();
    for case in &g.index.cases {
        let cfg = g.config(&case.config);
        let what = format!("{} / {}", case.image, case.config);
        let bytes = read(&case.image);
        let values = preprocess_bytes(&case.image, &bytes, &cfg).unwrap();
        let diff = max_abs_diff(&values, &g.values(case));
        if inexact_decoder(&case.image) {
            let decoded = decode_rgb(&case.image, &bytes).unwrap();
            let ours = resize(&decoded, cfg.size.width, cfg.size.height, cfg.resample).unwrap();
            let (max, mean) = level_diff(&ours, &g.resized(case));
            println!("{what}: resized |ours - PIL| max {max}, mean {mean:.3}");
            assert!(
                max <= JPEG_MAX_LEVELS && mean <= JPEG_MEAN_LEVELS,
                "{what}: max {max} mean {mean}"
            );
            let std = cfg.image_std.iter().copied().fold(f32::INFINITY, f32::min);
            let bound = f32::from(JPEG_MAX_LEVELS) / 255.0 / std + 1e-6;
            assert!(diff <= bound, "{what}: max diff {diff} > {bound}");
        } else {
            assert!(
                diff == 0.0,
                "{what}: max |pixel_values - reference| = {diff} (should be identical)"
            );
        }
    }
}

#[test]
fn config_defaults_and_forms() {
    let cfg = PreprocessorConfig::from_json("p.json", b"{}").unwrap();
    assert!(cfg.do_resize && cfg.do_rescale && cfg.do_normalize);
    assert_eq!((cfg.size.height, cfg.size.width, cfg.resample), (224, 224, 2));
    // Bit-identical to Python's 1/255, as HF writes it into configs.
    assert_eq!(cfg.rescale_factor, 1.0 / 255.0);
    let written = PreprocessorConfig::from_json("p.json", br#"{"rescale_factor": 0.00392156862745098}"#);
    assert_eq!(written.unwrap().rescale_factor, 1.0 / 255.0);
    assert_eq!(cfg.image_mean, vec![0.5; 3]);
    assert_eq!(cfg.image_std, vec![0.5; 3]);

    let cfg = PreprocessorConfig::from_json(
        "p.json",
        br#"{"size": 384, "image_mean": 0.25, "size_divisor": null, "image_processor_type": "ViTImageProcessor"}"#,
    )
    .unwrap();
    assert_eq!((cfg.size.height, cfg.size.width), (384, 384));
    assert_eq!(cfg.image_mean, vec![0.25; 3]);
}

fn config_error(json: &str) -> String {
    match PreprocessorConfig::from_json("preprocessor_config.json", json.as_bytes()) {
        Err(e @ EngineError::Config { .. }) => e.to_string(),
        other => panic!("{json}: expected a config error, got {other:?}"),
    }
}

#[test]
fn unsupported_configs_are_refused_clearly() {
    let e = config_error(r#"{"size": {"shortest_edge": 224}}"#);
    assert!(
        e.starts_with("preprocessor_config.json: ") && e.contains("shortest_edge"),
        "{e}"
    );
    assert!(config_error(r#"{"size": {"height": 224}}"#).contains("width"));
    assert!(config_error(r#"{"resample": 9}"#).contains("resample 9"));
    assert!(config_error(r#"{"image_mean": [0.5, 0.5]}"#).contains("3 values"));
    assert!(config_error(r#"{"do_center_crop": true}"#).contains("do_center_crop"));
    assert!(config_error("not json").contains("JSON"));
}

fn image_error(file: &str, bytes: &[u8]) -> String {
    match decode_rgb(file, bytes) {
        Err(e @ EngineError::Image { .. }) => {
            let text = e.to_string();
            assert!(text.starts_with(&format!("{file}: not a usable image")), "{text}");
            text
        }
        other => panic!("{file}: expected an image error, got {other:?}"),
    }
}

#[test]
fn bad_files_name_the_file() {
    image_error("notes.png", b"these are my notes, not a picture\n");
    image_error("empty.jpg", b"");
    let png = read("rgb_61x37.png");
    image_error("truncated.png", &png[..png.len() / 2]);
    image_error("header_only.png", &png[..40]);
    let webp = read("lossless_45x29.webp");
    image_error("truncated.webp", &webp[..webp.len() / 2]);
    // A real image in a format the browser build does not decode.
    image_error("bitmap.bmp", b"BM\x3a\0\0\0\0\0\0\0\x36\0\0\0\x28\0\0\0");
    // preprocess_bytes passes decoding errors through.
    let cfg = PreprocessorConfig::from_json("p.json", b"{}").unwrap();
    assert!(matches!(
        preprocess_bytes("x.gif", b"GIF89a", &cfg),
        Err(EngineError::Image { .. })
    ));
}

#[test]
fn output_layout_is_chw() {
    // One red pixel, one blue: channel planes must come out whole, not interleaved.
    let img = RgbImage::from_raw(2, 1, vec![255, 0, 0, 0, 0, 255]).unwrap();
    let cfg = PreprocessorConfig::from_json("p.json", br#"{"do_resize": false}"#).unwrap();
    assert_eq!(
        preprocess(&img, &cfg).unwrap(),
        vec![1.0, -1.0, -1.0, -1.0, -1.0, 1.0]
    );
}
