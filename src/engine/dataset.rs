//! CSV files for head-only fine-tuning: bytes → [`CsvTable`] (delimiter, header and encoding
//! detected) → [`Dataset`] (texts and class indices) → [`stratified_split`].
//!
//! Every bad file gets a message that names the file and says what to fix: the UI shows
//! [`EngineError`]s to the user as they are, and nothing here panics on any input. Rows that
//! cannot be used (an empty text or label, the wrong number of fields) are skipped, counted
//! and reported in [`Dataset::warnings`]; the whole file is rejected only when too little is
//! left to train on or the label column cannot be a classifier's.

use std::collections::{BTreeMap, HashMap};

use super::rng::SplitMix64;
use super::EngineError;

type Result<T> = std::result::Result<T, EngineError>;

/// The largest CSV accepted (64 MB, decimal). The browser holds the file's bytes, the parsed
/// rows, the tokenized texts and the embeddings at once, in a wasm32 memory that also holds
/// the model; larger files fail there with an opaque out-of-memory error, so we refuse them
/// up front with a message instead.
pub const MAX_CSV_BYTES: usize = 64_000_000;

/// The most classes a label column may have. More usually means the wrong column (an id or
/// the text itself), and a head trained on a few examples per class would not learn anyway.
pub const MAX_CLASSES: usize = 100;

/// Each class needs one example to train on and one to check with.
pub const MIN_EXAMPLES_PER_CLASS: usize = 2;

/// Delimiters tried by detection, in the order preferred on a tie: the ones least likely to
/// occur inside a text come first (a tab-separated file with one comma in every text splits
/// consistently on both).
pub const DELIMITERS: [u8; 4] = [b'\t', b'|', b';', b','];

/// Column names that hold the text, most specific first (compared lower-case, without
/// spaces, `_` and `-`).
const TEXT_NAMES: &[&str] = &[
    "text",
    "sentence",
    "review",
    "reviewtext",
    "comment",
    "content",
    "body",
    "message",
    "tweet",
    "document",
    "utterance",
    "sms",
    "query",
    "question",
    "input",
    "headline",
    "title",
    "sentence1",
];

/// Column names that hold the label, most specific first (compared like [`TEXT_NAMES`]).
const LABEL_NAMES: &[&str] = &[
    "label",
    "labels",
    "labelname",
    "goldlabel",
    "class",
    "classname",
    "category",
    "sentiment",
    "target",
    "polarity",
    "intent",
    "emotion",
    "topic",
    "tag",
    "y",
    "output",
    "rating",
    "stars",
    "score",
];

/// How many records delimiter and header detection look at (the start of the file is enough,
/// and a 64 MB file is not parsed four times).
const SNIFF_RECORDS: usize = 200;

/// How many rows column guessing looks at.
const GUESS_ROWS: usize = 2000;

/// Numeric labels with a fraction and more distinct values than this look like a regression
/// target rather than classes (ratings such as 3.5 stars stay classes).
const MAX_FRACTIONAL_CLASSES: usize = 10;

/// Overrides for what [`CsvTable::parse`] detects; the UI re-parses with these when the user
/// corrects a guess.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CsvOptions {
    /// One of [`DELIMITERS`] (or any ASCII byte); `None` detects it.
    pub delimiter: Option<u8>,
    /// `None` detects whether the first row names the columns.
    pub has_header: Option<bool>,
}

/// One data row: its cells (trimmed) and the line of the file it starts on (1-based), for
/// messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub line: u64,
    pub cells: Vec<String>,
}

/// A parsed CSV file, before the text and label columns are chosen.
#[derive(Clone, Debug)]
pub struct CsvTable {
    /// The name shown in messages.
    pub file_name: String,
    /// Column names: the header's cells, or `column 1`, `column 2`, … when there is no header
    /// (or a header cell is empty). Their count is the table's width.
    pub headers: Vec<String>,
    /// The data rows, blank rows left out. Ragged rows are kept here (the preview shows
    /// them) and skipped by [`CsvTable::dataset`].
    pub rows: Vec<Row>,
    pub delimiter: u8,
    pub has_header: bool,
}

/// Texts and class indices, ready for training.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub texts: Vec<String>,
    /// Indices into `label_names`, one per text.
    pub labels: Vec<u32>,
    /// The CSV's own label strings, sorted (numerically when they are all numbers).
    pub label_names: Vec<String>,
    /// Rows skipped for an empty text or label cell.
    pub skipped_empty: usize,
    /// Rows skipped for having a different number of fields than the header.
    pub skipped_ragged: usize,
    /// One sentence per kind of skipped row, for the UI.
    pub warnings: Vec<String>,
}

impl Dataset {
    /// Examples per class, in the order of `label_names`.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.label_names.len()];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }
}

fn err(file: &str, msg: impl std::fmt::Display) -> EngineError {
    EngineError::Input(format!("{file}: {msg}"))
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn delimiter_name(d: u8) -> String {
    match d {
        b'\t' => "tab".into(),
        b' ' => "space".into(),
        _ => format!("'{}'", d as char),
    }
}

/// A number as people write labels and scores: finite, no "nan"/"inf" (those are words).
fn is_number(s: &str) -> bool {
    s.parse::<f64>().is_ok_and(f64::is_finite)
}

fn normalize_name(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The most frequent value and how often it occurs (the larger value on a tie).
fn mode(values: impl Iterator<Item = usize>) -> (usize, usize) {
    let mut counts = BTreeMap::new();
    for v in values {
        *counts.entry(v).or_insert(0usize) += 1;
    }
    counts.into_iter().max_by_key(|&(v, n)| (n, v)).unwrap_or((0, 0))
}

fn reader(text: &str, delimiter: u8) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false) // we decide ourselves whether the first row is a header
        .flexible(true) // ragged rows are reported by line, not a parse error
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes())
}

/// Checks the size and the encoding; returns the text without a UTF-8 BOM.
fn decode<'a>(file: &str, bytes: &'a [u8]) -> Result<&'a str> {
    if bytes.len() > MAX_CSV_BYTES {
        return Err(err(
            file,
            format!(
                "the file is {:.1} MB; the limit in the browser is {} MB. Use a sample of the rows",
                bytes.len() as f64 / 1e6,
                MAX_CSV_BYTES / 1_000_000
            ),
        ));
    }
    let utf16 = "UTF-16 text, not UTF-8; save it as UTF-8 (in Excel: \"CSV UTF-8\")";
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(err(file, utf16));
    }
    if bytes.starts_with(b"PK\x03\x04") {
        return Err(err(
            file,
            "not a text CSV file (it is a zip archive, perhaps an Excel workbook); \
             export it as CSV UTF-8",
        ));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let sample = &bytes[..bytes.len().min(8192)];
    // UTF-16 without a BOM: ASCII text with a NUL in every other byte.
    let nuls = |parity| sample.iter().skip(parity).step_by(2).filter(|&&b| b == 0).count();
    let (even, odd) = (nuls(0), nuls(1));
    if sample.len() >= 4 && even.max(odd) * 4 >= sample.len() && even.min(odd) * 10 <= even.max(odd) {
        return Err(err(file, utf16));
    }
    let binary = "not a text CSV file (it looks binary); choose a .csv saved as text";
    if bytes.contains(&0) {
        return Err(err(file, binary));
    }
    std::str::from_utf8(bytes).map_err(|e| {
        // Text in another encoding (Latin-1, Windows-1252) has no control characters;
        // binary data has many.
        let controls = sample
            .iter()
            .filter(|&&b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0C)) || b == 0x7F)
            .count();
        if controls * 100 > sample.len() {
            return err(file, binary);
        }
        let at = e.valid_up_to();
        let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        err(
            file,
            format!(
                "not UTF-8 text (byte 0x{:02X} on line {line}, offset {at}); save it as UTF-8 \
                 (in Excel: \"CSV UTF-8\")",
                bytes[at]
            ),
        )
    })
}

/// The delimiter that splits the first records into the most consistent number of fields
/// (at least two); ',' when none does.
fn sniff_delimiter(text: &str) -> u8 {
    let mut best = (b',', 0.0);
    for &d in &DELIMITERS {
        let counts: Vec<usize> = reader(text, d)
            .records()
            .take(SNIFF_RECORDS)
            .filter_map(|r| r.ok())
            .filter(|r| r.iter().any(|c| !c.is_empty()))
            .map(|r| r.len())
            .collect();
        let (fields, n) = mode(counts.iter().copied());
        if fields < 2 {
            continue;
        }
        let consistency = n as f64 / counts.len() as f64;
        // Strictly better only, so the earlier (preferred) delimiter wins a tie.
        if consistency > best.1 {
            best = (d, consistency);
        }
    }
    best.0
}

/// All non-blank records with their lines; rejects a quote that never closes.
fn read_rows(file: &str, text: &str, delimiter: u8) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut last_start = None;
    for record in reader(text, delimiter).records() {
        let record = record.map_err(|e| err(file, format!("not readable as CSV: {e}")))?;
        let pos = record.position().cloned().unwrap_or_else(csv::Position::new);
        last_start = Some(pos.clone());
        if record.iter().all(str::is_empty) {
            continue; // blank lines and rows of empty cells carry nothing
        }
        rows.push(Row {
            line: pos.line(),
            cells: record.iter().map(String::from).collect(),
        });
    }
    // A quote that never closes makes the rest of the file one cell of the last record. Its
    // raw text then has an odd number of quotes (escaped quotes come in pairs) and spans lines.
    if let Some(pos) = last_start {
        let raw = text.get(pos.byte() as usize..).unwrap_or("").trim_end();
        if raw.matches('"').count() % 2 == 1 && raw.contains('\n') {
            return Err(err(
                file,
                format!(
                    "line {}: a quote (\") opens a field that never closes, so the rest of the \
                     file ({}) would be one cell; close the quote or remove it",
                    pos.line(),
                    plural(raw.lines().count(), "line", "lines")
                ),
            ));
        }
    }
    Ok(rows)
}

/// Whether the first row names the columns rather than holding data.
fn detect_header(rows: &[Row]) -> bool {
    let Some(first) = rows.first() else {
        return false;
    };
    let known = |c: &String| {
        let n = normalize_name(c);
        TEXT_NAMES.contains(&n.as_str()) || LABEL_NAMES.contains(&n.as_str())
    };
    if first.cells.iter().any(known) {
        return true;
    }
    // Column names are not numbers.
    if first.cells.iter().any(|c| is_number(c)) {
        return false;
    }
    let below = &rows[1..rows.len().min(SNIFF_RECORDS)];
    for (j, name) in first.cells.iter().enumerate() {
        if name.is_empty() {
            continue;
        }
        let column: Vec<&str> = below
            .iter()
            .filter_map(|r| r.cells.get(j))
            .map(String::as_str)
            .filter(|c| !c.is_empty())
            .collect();
        if column.is_empty() {
            continue;
        }
        // A word above numbers ("score" over 0.5, 0.7, …).
        if column.iter().all(|c| is_number(c)) {
            return true;
        }
        // A name above a column of repeating values that it is not one of ("mood" over
        // pos, neg, pos, …); in a file without a header every class occurs again below.
        let mut distinct: Vec<&str> = column.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() * 2 <= column.len() && !distinct.contains(&name.as_str()) {
            return true;
        }
    }
    false
}

impl CsvTable {
    /// Parses a CSV file, detecting its delimiter and header; see [`CsvTable::parse_with`].
    pub fn parse(file_name: &str, bytes: &[u8]) -> Result<CsvTable> {
        Self::parse_with(file_name, bytes, CsvOptions::default())
    }

    /// Parses a CSV file: at most [`MAX_CSV_BYTES`], UTF-8 with or without a BOM, fields
    /// separated by one of [`DELIMITERS`] and quoted with `"` (quoted fields may hold the
    /// delimiter and newlines). Cells are trimmed; blank rows are left out.
    pub fn parse_with(file_name: &str, bytes: &[u8], options: CsvOptions) -> Result<CsvTable> {
        let file = file_name;
        let text = decode(file, bytes)?;
        if text.trim().is_empty() {
            return Err(err(file, "the file is empty; it needs a header and data rows"));
        }
        let delimiter = options.delimiter.unwrap_or_else(|| sniff_delimiter(text));
        let mut rows = read_rows(file, text, delimiter)?;
        if rows.is_empty() {
            return Err(err(file, "no rows: every line is blank"));
        }
        let has_header = options.has_header.unwrap_or_else(|| detect_header(&rows));
        let headers = if has_header {
            let names = rows.remove(0).cells;
            if rows.is_empty() {
                return Err(err(
                    file,
                    format!("no data rows: only a header ({})", names.join(", ")),
                ));
            }
            names
                .into_iter()
                .enumerate()
                .map(|(i, n)| {
                    if n.is_empty() {
                        format!("column {}", i + 1)
                    } else {
                        n
                    }
                })
                .collect()
        } else {
            let (width, _) = mode(rows.iter().map(|r| r.cells.len()));
            (1..=width).map(|i| format!("column {i}")).collect()
        };
        Ok(CsvTable {
            file_name: file.to_string(),
            headers,
            rows,
            delimiter,
            has_header,
        })
    }

    /// The number of columns (the header's, or the most common row length without one).
    pub fn width(&self) -> usize {
        self.headers.len()
    }

    /// The first `n` data rows, for a preview.
    pub fn preview(&self, n: usize) -> &[Row] {
        &self.rows[..n.min(self.rows.len())]
    }

    /// The index of the column named `name` (ignoring case and surrounding spaces).
    pub fn column(&self, name: &str) -> Result<usize> {
        let want = name.trim().to_lowercase();
        self.headers
            .iter()
            .position(|h| h.to_lowercase() == want)
            .ok_or_else(|| {
                err(
                    &self.file_name,
                    format!(
                        "no column named \"{}\"; the columns are: {}",
                        name.trim(),
                        self.headers.join(", ")
                    ),
                )
            })
    }

    fn column_label(&self, i: usize) -> String {
        format!("\"{}\"", self.headers[i])
    }

    /// A first guess at the (text, label) columns, for the user to change: by name (`text`,
    /// `sentence`, `review`, … / `label`, `class`, `sentiment`, …), else the column with the
    /// fewest distinct repeating values as the label and the remaining column with the longest
    /// cells (not all numbers) as the text. `None` where nothing fits.
    pub fn guess_columns(&self) -> (Option<usize>, Option<usize>) {
        let names: Vec<String> = self.headers.iter().map(|h| normalize_name(h)).collect();
        let by_name = |list: &[&str], not: Option<usize>| {
            list.iter()
                .find_map(|want| (0..names.len()).find(|&i| Some(i) != not && names[i] == *want))
        };
        // Per column over a sample of well-formed rows: (average length, distinct values,
        // non-empty cells, all numeric).
        let sample: Vec<&Row> = self
            .rows
            .iter()
            .filter(|r| r.cells.len() == self.width())
            .take(GUESS_ROWS)
            .collect();
        let stats: Vec<(f64, usize, usize, bool)> = (0..self.width())
            .map(|j| {
                let cells: Vec<&str> = sample
                    .iter()
                    .map(|r| r.cells[j].as_str())
                    .filter(|c| !c.is_empty())
                    .collect();
                let chars: usize = cells.iter().map(|c| c.chars().count()).sum();
                let mut distinct = cells.clone();
                distinct.sort_unstable();
                distinct.dedup();
                let avg = chars as f64 / cells.len().max(1) as f64;
                (
                    avg,
                    distinct.len(),
                    cells.len(),
                    cells.iter().all(|c| is_number(c)),
                )
            })
            .collect();

        // Names first; then the label by content (a repeating column is a surer sign than
        // length), then the text as the longest remaining column that is not all numbers.
        let label = by_name(LABEL_NAMES, None);
        let text = by_name(TEXT_NAMES, label);
        let label = label.or_else(|| {
            (0..self.width())
                .filter(|&j| Some(j) != text)
                .filter(|&j| {
                    let (_, distinct, n, _) = stats[j];
                    (2..=MAX_CLASSES).contains(&distinct) && distinct < n
                })
                .min_by(|&a, &b| {
                    (stats[a].1, stats[a].0)
                        .partial_cmp(&(stats[b].1, stats[b].0))
                        .unwrap_or(std::cmp::Ordering::Equal)
                })
        });
        let text = text.or_else(|| {
            (0..self.width())
                .filter(|&j| Some(j) != label && stats[j].2 > 0 && !stats[j].3)
                .max_by(|&a, &b| stats[a].0.total_cmp(&stats[b].0))
        });
        (text, label)
    }

    fn check_column(&self, i: usize, what: &str) -> Result<()> {
        if i < self.width() {
            return Ok(());
        }
        let file = &self.file_name;
        if self.width() == 1 {
            return Err(err(
                file,
                format!(
                    "only one column ({}) was found, so there is no {what} column; a dataset \
                     needs a text column and a label column (fields separated by , ; tab or |)",
                    self.column_label(0)
                ),
            ));
        }
        Err(err(
            file,
            format!(
                "there is no column {} for the {what}; the file has {} ({})",
                i + 1,
                plural(self.width(), "column", "columns"),
                self.headers.join(", ")
            ),
        ))
    }

    /// The texts of column `text_col` with the labels of column `label_col` (0-based).
    /// Rows with an empty text or label, or with a different number of fields than the
    /// header, are skipped and counted. Fails when no rows are left, when most rows are
    /// ragged, or when the labels cannot train a classifier: numbers mixed with words, a
    /// numeric (regression) target, more than [`MAX_CLASSES`] classes, one class only, or a
    /// class with fewer than [`MIN_EXAMPLES_PER_CLASS`] examples.
    pub fn dataset(&self, text_col: usize, label_col: usize) -> Result<Dataset> {
        let file = &self.file_name;
        self.check_column(text_col, "text")?;
        self.check_column(label_col, "label")?;
        if text_col == label_col {
            return Err(err(
                file,
                format!(
                    "the text and the label are both column {}; choose two different columns",
                    self.column_label(text_col)
                ),
            ));
        }
        let width = self.width();
        let row_kind = if self.has_header {
            "the header has"
        } else {
            "most rows have"
        };

        let mut texts = Vec::new();
        let mut label_strings = Vec::new();
        let mut lines = Vec::new();
        let (mut skipped_empty, mut skipped_ragged) = (0, 0);
        let (mut first_empty, mut first_ragged) = (None, None);
        for row in &self.rows {
            if row.cells.len() != width {
                skipped_ragged += 1;
                first_ragged.get_or_insert((row.line, row.cells.len()));
                continue;
            }
            let (text, label) = (&row.cells[text_col], &row.cells[label_col]);
            if text.is_empty() || label.is_empty() {
                skipped_empty += 1;
                first_empty.get_or_insert(row.line);
                continue;
            }
            texts.push(text.clone());
            label_strings.push(label.as_str());
            lines.push(row.line);
        }
        let ragged_note = first_ragged.map(|(line, n)| {
            format!(
                "line {line} has {}; {row_kind} {width}",
                plural(n, "field", "fields")
            )
        });
        if skipped_ragged * 2 > self.rows.len() {
            return Err(err(
                file,
                format!(
                    "{skipped_ragged} of {} rows do not have {width} fields ({}); check the \
                     delimiter (detected: {}) and that texts holding it are quoted",
                    self.rows.len(),
                    ragged_note.unwrap_or_default(),
                    delimiter_name(self.delimiter)
                ),
            ));
        }
        if texts.is_empty() {
            return Err(err(
                file,
                format!(
                    "no usable rows: every row has an empty text or label ({} skipped)",
                    plural(skipped_empty, "row", "rows")
                ),
            ));
        }
        let label_names = self.label_names(&label_strings, &lines, label_col)?;
        let index: HashMap<&str, u32> = label_names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i as u32))
            .collect();
        let labels: Vec<u32> = label_strings.iter().map(|l| index[l]).collect();

        let mut warnings = Vec::new();
        if let Some(note) = ragged_note {
            warnings.push(format!(
                "skipped {} with a different number of fields ({note})",
                plural(skipped_ragged, "row", "rows")
            ));
        }
        if let Some(line) = first_empty {
            warnings.push(format!(
                "skipped {} with an empty text or label (the first on line {line})",
                plural(skipped_empty, "row", "rows")
            ));
        }
        let dataset = Dataset {
            texts,
            labels,
            label_names,
            skipped_empty,
            skipped_ragged,
            warnings,
        };
        self.check_classes(&dataset, label_col)?;
        Ok(dataset)
    }

    /// The distinct labels, sorted: numerically when all are numbers, else alphabetically.
    fn label_names(&self, labels: &[&str], lines: &[u64], label_col: usize) -> Result<Vec<String>> {
        let file = &self.file_name;
        let column = self.column_label(label_col);
        let first_number = labels.iter().position(|l| is_number(l));
        let first_word = labels.iter().position(|l| !is_number(l));
        if let (Some(n), Some(w)) = (first_number, first_word) {
            // Usually a shifted column (an unquoted delimiter in a text) or the wrong column.
            return Err(err(
                file,
                format!(
                    "the label column {column} mixes numbers and words (\"{}\" on line {}, \
                     \"{}\" on line {}); use one kind of label, or choose another column",
                    labels[n], lines[n], labels[w], lines[w]
                ),
            ));
        }
        let mut names: Vec<&str> = labels.to_vec();
        names.sort_unstable();
        names.dedup();
        let numeric = first_word.is_none();
        if numeric {
            let value = |s: &str| s.parse::<f64>().unwrap_or(0.0);
            let fractional = names.iter().any(|n| value(n).fract() != 0.0);
            if names.len() > MAX_CLASSES || (fractional && names.len() > MAX_FRACTIONAL_CLASSES) {
                return Err(err(
                    file,
                    format!(
                        "the label column {column} holds numbers with {} distinct values; a \
                         classifier needs a few classes. Is this a regression target?",
                        names.len()
                    ),
                ));
            }
            // "2" before "10"; "1" and "1.0" stay the CSV's own (different) strings.
            names.sort_by(|a, b| value(a).total_cmp(&value(b)).then(a.cmp(b)));
        } else {
            // Alphabetical ignoring case, so the order does not depend on the row order.
            names.sort_by(|a, b| a.to_lowercase().cmp(&b.to_lowercase()).then(a.cmp(b)));
        }
        if names.len() > MAX_CLASSES {
            return Err(err(
                file,
                format!(
                    "the label column {column} has {} different values; at most {MAX_CLASSES} \
                     classes are supported (is it the text column?)",
                    names.len()
                ),
            ));
        }
        Ok(names.into_iter().map(String::from).collect())
    }

    fn check_classes(&self, dataset: &Dataset, label_col: usize) -> Result<()> {
        let file = &self.file_name;
        let column = self.column_label(label_col);
        if dataset.label_names.len() == 1 {
            return Err(err(
                file,
                format!(
                    "only one class (\"{}\") in the label column {column}; a classifier needs at \
                     least two",
                    dataset.label_names[0]
                ),
            ));
        }
        let counts = dataset.class_counts();
        let few: Vec<&str> = (0..counts.len())
            .filter(|&i| counts[i] < MIN_EXAMPLES_PER_CLASS)
            .map(|i| dataset.label_names[i].as_str())
            .collect();
        let need = format!("each class needs at least {MIN_EXAMPLES_PER_CLASS} (one to train, one to check)");
        match few.as_slice() {
            [] => Ok(()),
            [one] => Err(err(file, format!("class \"{one}\" has only one example; {need}"))),
            many => {
                let shown: Vec<String> = many.iter().take(5).map(|n| format!("\"{n}\"")).collect();
                let more = if many.len() > 5 { ", …" } else { "" };
                Err(err(
                    file,
                    format!(
                        "{} classes have only one example ({}{more}); {need}",
                        many.len(),
                        shown.join(", ")
                    ),
                ))
            }
        }
    }
}

/// Splits example indices into (train, validation), each sorted, class by class: every class
/// keeps its proportion, and a class with at least two examples has at least one in each
/// part (a class with one example goes to training). `val_fraction` ≤ 0 puts everything in
/// training. The same `labels` and `seed` give the same split on every platform.
pub fn stratified_split(labels: &[u32], val_fraction: f32, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut by_class: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, &l) in labels.iter().enumerate() {
        by_class.entry(l).or_default().push(i);
    }
    let fraction = if val_fraction.is_nan() {
        0.0
    } else {
        val_fraction.clamp(0.0, 1.0)
    };
    let mut rng = SplitMix64(seed);
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (_, mut idx) in by_class {
        // Fisher–Yates.
        for i in (1..idx.len()).rev() {
            idx.swap(i, rng.below(i + 1));
        }
        let n = idx.len();
        let mut n_val = (n as f64 * fraction as f64).round() as usize;
        if fraction > 0.0 && n >= 2 {
            n_val = n_val.clamp(1, n - 1);
        } else if n < 2 {
            n_val = 0;
        }
        val.extend_from_slice(&idx[..n_val]);
        train.extend_from_slice(&idx[n_val..]);
    }
    train.sort_unstable();
    val.sort_unstable();
    (train, val)
}
