//! Images sorted into named classes, for head-only fine-tuning on a ViT's embeddings: the
//! image counterpart of a CSV's [`super::dataset::Dataset`], under the same rules (at least
//! two classes, two images per class, at most [`MAX_CLASSES`]).
//!
//! Images come as (class, file name, bytes): from the page (files dropped into a class, a
//! folder per class, or a zip of class folders), or from a folder of class folders (the CLI
//! and tests). Files that are not images are skipped, counted and named, never fatal on
//! their own; the set is refused only when too little is left to train on.

use std::io::Read;
use std::path::Path;

use super::dataset::{MAX_CLASSES, MIN_EXAMPLES_PER_CLASS};
use super::EngineError;

type Result<T> = std::result::Result<T, EngineError>;

/// The most images one training takes. Every image's bytes and its embedding are held at
/// once in the browser's wasm32 memory next to the model; this keeps that well inside it.
pub const MAX_IMAGES: usize = 20_000;

/// The most bytes all images (or a zip) may take together (decimal megabytes), for the same reason.
pub const MAX_TOTAL_BYTES: usize = 512_000_000;

/// One file handed in for training: its class, its name and its contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassFile {
    pub class: String,
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Images with class indices, ready to embed and train on.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageDataset {
    /// (file name, contents), one per example.
    pub images: Vec<(String, Vec<u8>)>,
    /// Indices into `label_names`, one per image.
    pub labels: Vec<u32>,
    /// The class names, sorted alphabetically (ignoring case).
    pub label_names: Vec<String>,
    /// Files left out, each as "name (why)".
    pub skipped: Vec<String>,
}

fn input(msg: impl Into<String>) -> EngineError {
    EngineError::Input(msg.into())
}

/// Whether the bytes start like an image file the decoder might read (PNG, JPEG, GIF,
/// WebP, BMP, …). A file that passes and still fails to decode is skipped when embedded.
pub fn looks_like_image(bytes: &[u8]) -> bool {
    image::guess_format(bytes).is_ok()
}

/// Is this file a zip archive (by its first bytes)?
pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")
}

/// The file name without its folders.
fn base(name: &str) -> &str {
    name.rsplit(['/', '\\']).next().unwrap_or(name)
}

/// Hidden files and folder droppings (`.DS_Store`, `Thumbs.db`, `__MACOSX/…`) are not the
/// user's images: left out without a word.
fn is_system_file(path: &str) -> bool {
    let b = base(path);
    b.starts_with('.')
        || b.eq_ignore_ascii_case("thumbs.db")
        || b.eq_ignore_ascii_case("desktop.ini")
        || path.split(['/', '\\']).any(|part| part == "__MACOSX")
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Files added on the page, sorted into classes by [`place_files`].
#[derive(Debug, PartialEq)]
pub struct Placed<T> {
    /// Each class (in the order first met) with its files as (path, file).
    pub classes: Vec<(String, Vec<(String, T)>)>,
    /// Files that belong to no class (no folder, no typed class name, not a zip).
    pub unplaced: Vec<String>,
}

/// Sorts files added on the page into classes by their path inside a dropped or picked
/// folder ("photos/shoes/a.png"; a single file's path is its name). As in a zip, a file's
/// class is the folder it is in: a dropped class folder gives `shoes/a.png` → "shoes", a
/// dropped or picked parent folder `photos/shoes/a.png` → "shoes". A file outside any folder
/// goes to `typed` (the class name typed on the page) when there is one; without it a zip
/// goes to the "" class (its own folders are the classes) and anything else is unplaced.
/// System files (`.DS_Store`, `__MACOSX/…`) are left out.
pub fn place_files<T>(files: Vec<(String, T)>, typed: &str) -> Placed<T> {
    let typed = typed.trim();
    let mut placed = Placed {
        classes: Vec::new(),
        unplaced: Vec::new(),
    };
    for (path, file) in files {
        let path = path.replace('\\', "/");
        if is_system_file(&path) {
            continue;
        }
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let class = match parts.len() {
            0 => continue,
            1 if !typed.is_empty() => typed.to_string(),
            1 if path.to_ascii_lowercase().ends_with(".zip") => String::new(),
            1 => {
                placed.unplaced.push(path);
                continue;
            }
            n => parts[n - 2].to_string(),
        };
        match placed.classes.iter_mut().find(|(c, _)| *c == class) {
            Some((_, files)) => files.push((path, file)),
            None => placed.classes.push((class, vec![(path, file)])),
        }
    }
    placed
}

/// The files of a zip archive of class folders: each file's class is the name of the
/// folder it is in (`shoes/a.png` → "shoes"; `photos/shoes/a.png` → "shoes"). Files at the
/// top of the archive get `top_class` when there is one, else they are an error.
pub fn read_zip(zip_name: &str, bytes: &[u8], top_class: Option<&str>) -> Result<Vec<ClassFile>> {
    let bad = |why: String| input(format!("{zip_name}: {why}"));
    if bytes.len() > MAX_TOTAL_BYTES {
        return Err(bad(format!(
            "{} MB is more than the {} MB this page can hold; use fewer or smaller images",
            bytes.len() / 1_000_000,
            MAX_TOTAL_BYTES / 1_000_000
        )));
    }
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| bad(format!("not a readable zip archive ({e})")))?;
    let mut out = Vec::new();
    let mut total = 0usize;
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| bad(format!("entry {i} cannot be read ({e})")))?;
        let path = entry
            .name()
            .map_err(|e| bad(format!("entry {i} has an unreadable name ({e})")))?
            .replace('\\', "/");
        if entry.is_dir() || is_system_file(&path) {
            continue;
        }
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let class = match parts.len() {
            0 => continue,
            1 => match top_class {
                Some(c) => c.to_string(),
                None => {
                    return Err(bad(format!(
                        "{path} is not in a class folder; put each class's images in a folder named after the class"
                    )))
                }
            },
            n => parts[n - 2].to_string(),
        };
        total = total.saturating_add(entry.size() as usize);
        if total > MAX_TOTAL_BYTES {
            return Err(bad(format!(
                "it unpacks to more than the {} MB this page can hold; use fewer or smaller images",
                MAX_TOTAL_BYTES / 1_000_000
            )));
        }
        let mut data = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut data).map_err(|e| {
            bad(format!(
                "{path} cannot be unpacked ({e}); only stored and deflated entries are supported"
            ))
        })?;
        out.push(ClassFile {
            class,
            name: format!("{zip_name}/{path}"),
            bytes: data,
        });
    }
    if out.is_empty() {
        return Err(bad("the archive holds no files".into()));
    }
    Ok(out)
}

/// The files of a folder holding one folder per class (native: the CLI and tests). Files
/// directly in `dir` are an error: they belong to no class.
pub fn read_class_folders(dir: &Path) -> Result<Vec<ClassFile>> {
    let shown = dir.display();
    let io = |p: &Path, e: std::io::Error| input(format!("{}: {e}", p.display()));
    let mut classes: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| io(dir, e))?;
    classes.sort_by_key(|e| e.file_name());
    let mut out = Vec::new();
    for entry in classes {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_system_file(&name) {
            continue;
        }
        if !path.is_dir() {
            return Err(input(format!(
                "{shown}: {name} is not in a class folder; put each class's images in a folder named after the class"
            )));
        }
        let mut files: Vec<_> = std::fs::read_dir(&path)
            .map_err(|e| io(&path, e))?
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| io(&path, e))?;
        files.sort_by_key(|e| e.file_name());
        for f in files {
            let fpath = f.path();
            if fpath.is_dir() || is_system_file(&f.file_name().to_string_lossy()) {
                continue;
            }
            out.push(ClassFile {
                class: name.clone(),
                name: fpath.display().to_string(),
                bytes: std::fs::read(&fpath).map_err(|e| io(&fpath, e))?,
            });
        }
    }
    Ok(out)
}

impl ImageDataset {
    /// Sorts `files` into classes. Zip archives among them are unpacked (their folders are
    /// classes; files at their top go to the class they were dropped into); files that are
    /// not images are skipped and named. Fails when the classes cannot train a classifier.
    pub fn new(files: Vec<ClassFile>) -> Result<Self> {
        let mut expanded = Vec::with_capacity(files.len());
        let mut total = 0usize;
        for f in files {
            total = total.saturating_add(f.bytes.len());
            if is_zip(&f.bytes) {
                let top = Some(f.class.trim()).filter(|c| !c.is_empty());
                expanded.extend(read_zip(&f.name, &f.bytes, top)?);
            } else {
                expanded.push(f);
            }
        }
        if total > MAX_TOTAL_BYTES {
            return Err(input(format!(
                "the images take {} MB; this page can hold at most {} MB of them",
                total / 1_000_000,
                MAX_TOTAL_BYTES / 1_000_000
            )));
        }
        let mut skipped = Vec::new();
        let mut kept: Vec<ClassFile> = Vec::with_capacity(expanded.len());
        let mut empty_classes: Vec<String> = Vec::new();
        for f in expanded {
            if is_system_file(&f.name) {
                continue;
            }
            let class = f.class.trim();
            if class.is_empty() {
                return Err(input(format!(
                    "{} has no class; name the class before adding its images",
                    f.name
                )));
            }
            if looks_like_image(&f.bytes) {
                kept.push(ClassFile {
                    class: class.to_string(),
                    ..f
                });
            } else {
                let why = if f.bytes.is_empty() {
                    "empty file"
                } else {
                    "not an image"
                };
                skipped.push(format!("{} ({why})", f.name));
                empty_classes.push(class.to_string());
            }
        }
        if kept.len() > MAX_IMAGES {
            return Err(input(format!(
                "{} images are more than the {MAX_IMAGES} one training takes here; use fewer per class",
                kept.len()
            )));
        }
        let mut names: Vec<String> = kept.iter().map(|f| f.class.clone()).collect();
        names.sort_by(|a, b| a.to_lowercase().cmp(&b.to_lowercase()).then(a.cmp(b)));
        names.dedup();
        // Classes whose every file was skipped would vanish silently: say so.
        empty_classes.retain(|c| !names.contains(c));
        empty_classes.sort();
        empty_classes.dedup();
        if let Some(c) = empty_classes.first() {
            return Err(input(format!(
                "class \"{c}\" has no images: its files are not images ({})",
                skipped_of(&skipped, 3)
            )));
        }
        let labels = kept
            .iter()
            .map(|f| names.iter().position(|n| *n == f.class).unwrap_or(0) as u32)
            .collect();
        let data = ImageDataset {
            images: kept.into_iter().map(|f| (f.name, f.bytes)).collect(),
            labels,
            label_names: names,
            skipped,
        };
        data.check_classes()?;
        Ok(data)
    }

    /// Images per class, in the order of `label_names`.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.label_names.len()];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// Leaves out the images (by index) that could not be decoded, with why, and checks
    /// the classes again.
    pub fn drop_failed(&mut self, failed: &[(usize, String)]) -> Result<()> {
        if failed.is_empty() {
            return Ok(());
        }
        let bad: std::collections::HashSet<usize> = failed.iter().map(|(i, _)| *i).collect();
        for (_, why) in failed {
            self.skipped.push(why.clone());
        }
        let mut i = 0;
        self.images.retain(|_| {
            i += 1;
            !bad.contains(&(i - 1))
        });
        let mut i = 0;
        self.labels.retain(|_| {
            i += 1;
            !bad.contains(&(i - 1))
        });
        self.check_classes()
    }

    /// One sentence about the skipped files, for the page.
    pub fn warnings(&self) -> Vec<String> {
        if self.skipped.is_empty() {
            return Vec::new();
        }
        vec![format!(
            "skipped {} that could not be used: {}",
            plural(self.skipped.len(), "file", "files"),
            skipped_of(&self.skipped, 5)
        )]
    }

    fn check_classes(&self) -> Result<()> {
        let n = self.label_names.len();
        if self.images.is_empty() {
            let note = if self.skipped.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} skipped: {})",
                    self.skipped.len(),
                    skipped_of(&self.skipped, 3)
                )
            };
            return Err(input(format!(
                "no images to train on{note}; add images to at least two classes"
            )));
        }
        if n == 1 {
            return Err(input(format!(
                "only one class (\"{}\"); a classifier needs at least two: add images of another class",
                self.label_names[0]
            )));
        }
        if n > MAX_CLASSES {
            return Err(input(format!("{n} classes; at most {MAX_CLASSES} are supported")));
        }
        let counts = self.class_counts();
        let few: Vec<String> = (0..n)
            .filter(|&i| counts[i] < MIN_EXAMPLES_PER_CLASS)
            .map(|i| format!("\"{}\"", self.label_names[i]))
            .collect();
        let need =
            format!("each class needs at least {MIN_EXAMPLES_PER_CLASS} images (one to train, one to check)");
        match few.as_slice() {
            [] => Ok(()),
            [one] => Err(input(format!("class {one} has only one image; {need}"))),
            many => Err(input(format!(
                "{} classes have only one image ({}{}); {need}",
                many.len(),
                many.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
                if many.len() > 5 { ", …" } else { "" }
            ))),
        }
    }
}

fn skipped_of(skipped: &[String], n: usize) -> String {
    let mut s = skipped.iter().take(n).cloned().collect::<Vec<_>>().join(", ");
    if skipped.len() > n {
        s.push_str(", …");
    }
    s
}

/// A cheap fingerprint of a set of images (names, sizes and contents: FNV-1a), so that the
/// same images embedded by the same model are not embedded again.
pub fn fingerprint(images: &[(String, Vec<u8>)]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for (name, bytes) in images {
        eat(name.as_bytes());
        eat(&(bytes.len() as u64).to_le_bytes());
        eat(bytes);
    }
    h
}
