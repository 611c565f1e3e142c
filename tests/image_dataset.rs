//! Images sorted into classes for fine-tuning: every bad input gets its own message (one
//! case per kind), files that are not images are skipped and named, zips of class folders
//! unpack into their classes, and the service refuses images without a ViT loaded.

use std::io::Write;

use webformer::engine::finetune::TrainConfig;
use webformer::engine::image_dataset::{read_zip, ClassFile, ImageDataset};
use webformer::protocol::{Request, Response};
use webformer::service::{Ctx, Service};

/// A real 2×2 PNG (its grey level makes each file different).
fn png(v: u8) -> Vec<u8> {
    let img = image::GrayImage::from_raw(2, 2, vec![v; 4]).unwrap();
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn file(class: &str, name: &str, bytes: Vec<u8>) -> ClassFile {
    ClassFile {
        class: class.into(),
        name: name.into(),
        bytes,
    }
}

fn two_classes() -> Vec<ClassFile> {
    vec![
        file("cats", "c1.png", png(1)),
        file("cats", "c2.png", png(2)),
        file("dogs", "d1.png", png(3)),
        file("dogs", "d2.png", png(4)),
    ]
}

fn err(files: Vec<ClassFile>) -> String {
    match ImageDataset::new(files) {
        Ok(d) => panic!(
            "expected an error, got {:?} {:?}",
            d.label_names,
            d.class_counts()
        ),
        Err(e) => e.to_string(),
    }
}

fn zip_of(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in entries {
        w.start_file(*name, opts).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

#[test]
fn classes_are_sorted_and_counted() {
    let mut files = two_classes();
    files.push(file("Birds", "b1.png", png(5)));
    files.push(file(" Birds ", "b2.png", png(6)));
    let d = ImageDataset::new(files).unwrap();
    assert_eq!(d.label_names, ["Birds", "cats", "dogs"]);
    assert_eq!(d.class_counts(), [2, 2, 2]);
    assert!(d.skipped.is_empty() && d.warnings().is_empty());
}

#[test]
fn files_that_are_not_images_are_skipped_counted_and_named() {
    let mut files = two_classes();
    files.push(file("cats", "readme.txt", b"just some notes".to_vec()));
    files.push(file("dogs", "empty.png", Vec::new()));
    files.push(file("dogs", ".DS_Store", b"\0\0\0\x01Bud1".to_vec()));
    let d = ImageDataset::new(files).unwrap();
    assert_eq!(d.images.len(), 4);
    assert_eq!(d.skipped, ["readme.txt (not an image)", "empty.png (empty file)"]);
    let w = d.warnings();
    assert_eq!(w.len(), 1);
    assert!(
        w[0].contains("skipped 2 files") && w[0].contains("readme.txt"),
        "{w:?}"
    );
}

#[test]
fn every_bad_set_of_images_gets_its_message() {
    let cases: Vec<(&str, Vec<ClassFile>, &str)> = vec![
        ("nothing", Vec::new(), "no images to train on"),
        (
            "only files that are not images",
            vec![
                file("a", "x.txt", b"hello".to_vec()),
                file("b", "y.csv", b"1,2".to_vec()),
            ],
            "has no images: its files are not images (x.txt (not an image)",
        ),
        (
            "one class only",
            vec![file("cats", "1.png", png(1)), file("cats", "2.png", png(2))],
            "only one class (\"cats\"); a classifier needs at least two",
        ),
        (
            "a class with one image",
            vec![
                file("cats", "1.png", png(1)),
                file("cats", "2.png", png(2)),
                file("dogs", "3.png", png(3)),
            ],
            "class \"dogs\" has only one image; each class needs at least 2 images",
        ),
        (
            "a file without a class",
            vec![file("", "1.png", png(1)), file("dogs", "3.png", png(3))],
            "1.png has no class; name the class",
        ),
        (
            "too many classes",
            (0..101)
                .flat_map(|c| {
                    (0..2).map(move |i| file(&format!("class {c}"), &format!("{c}-{i}.png"), png(c as u8)))
                })
                .collect(),
            "101 classes; at most 100 are supported",
        ),
        (
            "a zip with files outside class folders",
            vec![file("", "set.zip", zip_of(&[("a.png", png(1))]))],
            "set.zip: a.png is not in a class folder",
        ),
        (
            "a broken zip",
            vec![file(
                "cats",
                "set.zip",
                b"PK\x03\x04 this is not really a zip".to_vec(),
            )],
            "set.zip: not a readable zip archive",
        ),
    ];
    for (case, files, expected) in cases {
        let message = err(files);
        assert!(
            message.contains(expected),
            "{case}: {message:?} lacks {expected:?}"
        );
    }
}

#[test]
fn an_undecodable_image_is_dropped_later_and_the_classes_checked_again() {
    let mut d = ImageDataset::new(two_classes()).unwrap();
    let e = d
        .drop_failed(&[(2, "d1.png: cannot decode".into())])
        .unwrap_err()
        .to_string();
    assert!(e.contains("class \"dogs\" has only one image"), "{e}");
    let mut d = ImageDataset::new([two_classes(), vec![file("dogs", "d3.png", png(9))]].concat()).unwrap();
    d.drop_failed(&[(0, "c1.png: cannot decode".into())]).unwrap_err();
    let mut d = ImageDataset::new([two_classes(), vec![file("dogs", "d3.png", png(9))]].concat()).unwrap();
    d.drop_failed(&[(4, "d3.png: cannot decode".into())]).unwrap();
    assert_eq!(d.class_counts(), [2, 2]);
    assert_eq!(d.skipped, ["d3.png: cannot decode"]);
}

#[test]
fn a_zip_of_class_folders_unpacks_into_its_classes() {
    let z = zip_of(&[
        ("photos/cats/1.png", png(1)),
        ("photos/cats/2.png", png(2)),
        ("photos/dogs/1.png", png(3)),
        ("photos/dogs/2.png", png(4)),
        ("photos/dogs/notes.txt", b"not an image".to_vec()),
        ("__MACOSX/photos/dogs/._1.png", b"resource fork".to_vec()),
        ("top.png", png(5)),
    ]);
    let files = read_zip("set.zip", &z, Some("birds")).unwrap();
    assert_eq!(files.len(), 6, "the __MACOSX entry is left out");
    // Dropped into class "birds": the zip's top-level file goes there.
    let d = ImageDataset::new(vec![file("birds", "b.png", png(6)), file("birds", "set.zip", z)]).unwrap();
    assert_eq!(d.label_names, ["birds", "cats", "dogs"]);
    assert_eq!(d.class_counts(), [2, 2, 2]);
    assert_eq!(d.skipped, ["set.zip/photos/dogs/notes.txt (not an image)"]);
}

fn handle(service: &mut Service, request: Request, files: Vec<Vec<u8>>) -> Response {
    pollster::block_on(service.handle(request, files, &Ctx::quiet()))
}

fn train_request(n: usize) -> Request {
    Request::TrainImages {
        classes: ["cats", "cats", "dogs", "dogs"][..n]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        names: (0..n).map(|i| format!("{i}.png")).collect(),
        config: TrainConfig::default(),
    }
}

fn error_of(r: Response) -> String {
    match r {
        Response::Error { message } => message,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn the_service_needs_a_vit_and_matching_files() {
    let images: Vec<Vec<u8>> = (1..=4).map(png).collect();
    let mut service = Service::new();
    let m = error_of(handle(&mut service, train_request(4), images.clone()));
    assert!(m.contains("load an image model (a ViT) first"), "{m}");

    let names = ["config.json", "model.safetensors", "tokenizer.json"];
    let files = names
        .iter()
        .map(|n| std::fs::read(format!("tests/fixtures/bert-encoder/{n}")).unwrap())
        .collect();
    let r = handle(
        &mut service,
        Request::LoadModel {
            source: "bert-encoder".into(),
            names: names.iter().map(|n| n.to_string()).collect(),
        },
        files,
    );
    assert!(matches!(r, Response::ModelLoaded(_)), "{r:?}");
    let m = error_of(handle(&mut service, train_request(4), images.clone()));
    assert!(
        m.contains("(bert-encoder) takes text; load an image model"),
        "{m}"
    );

    let m = error_of(handle(&mut service, train_request(4), images[..3].to_vec()));
    assert!(m.contains("4 classes, 4 image names and 3 contents"), "{m}");

    let m = error_of(handle(&mut service, Request::ExportImageHead, Vec::new()));
    assert!(m.contains("no trained image head"), "{m}");
}
