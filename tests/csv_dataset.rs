//! CSV files for head-only fine-tuning: every bad input gets its own message (one case per
//! kind in a table), and good files of the usual shapes are read as the user means them.

use webformer::engine::dataset::{
    stratified_split, CsvOptions, CsvTable, Dataset, MAX_CLASSES, MAX_CSV_BYTES,
};

/// Which columns a case uses.
enum Pick {
    /// `guess_columns`, as the UI starts.
    Auto,
    /// By header name, as the user chooses.
    Named(&'static str, &'static str),
    /// By index (text, label).
    Index(usize, usize),
}

/// What a case must produce: an error, or a dataset with a warning; each containing the text.
enum Expect {
    Error(&'static str),
    Warning(&'static str),
}

fn load(file: &str, bytes: &[u8], pick: &Pick) -> Result<Dataset, String> {
    let table = CsvTable::parse(file, bytes).map_err(|e| e.to_string())?;
    let (text, label) = match *pick {
        Pick::Auto => match table.guess_columns() {
            (Some(t), Some(l)) => (t, l),
            other => return Err(format!("no columns guessed: {other:?}")),
        },
        Pick::Named(t, l) => (
            table.column(t).map_err(|e| e.to_string())?,
            table.column(l).map_err(|e| e.to_string())?,
        ),
        Pick::Index(t, l) => (t, l),
    };
    table.dataset(text, label).map_err(|e| e.to_string())
}

fn ok(file: &str, text: &str) -> Dataset {
    load(file, text.as_bytes(), &Pick::Auto).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// `n` rows per label, "<label> example <i>" as the text.
fn rows(labels: &[&str], n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        for l in labels {
            s += &format!("{l} example {i},{l}\n");
        }
    }
    s
}

#[test]
fn bad_inputs_get_specific_messages() {
    let too_many: String = "text,label\n".to_string()
        + &(0..150)
            .flat_map(|i| [format!("a {i},c{i}\n"), format!("b {i},c{i}\n")])
            .collect::<String>();
    let regression: String = "text,score\n".to_string()
        + &(0..37)
            .map(|i| format!("review {i},{}.5\n", i % 37))
            .collect::<String>();
    let mut big = vec![b'a'; MAX_CSV_BYTES + 16_000_000];
    big[..11].copy_from_slice(b"text,label\n");
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\x08\x06\0\0\0\x1f\xf3\xffa";
    let xlsx = b"PK\x03\x04\x14\0\x06\0\x08\0\0\0!\0[Content_Types].xml";
    let latin1 = b"text,label\ncaf\xe9 au lait,pos\nbad,neg\n";
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain("text,label\nhi,pos\n".encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let utf16_no_bom: Vec<u8> = "text,label\nhi,pos\nno,neg\n"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();

    #[rustfmt::skip]
    let cases: Vec<(&str, &str, Vec<u8>, Pick, Expect)> = vec![
        // no rows
        ("empty file", "empty.csv", b"".to_vec(), Pick::Auto,
         Expect::Error("empty.csv: the file is empty")),
        ("blank lines only", "blank.csv", b"\n\r\n  \n".to_vec(), Pick::Auto,
         Expect::Error("blank.csv: the file is empty")),
        ("header only", "head.csv", b"text,label\n".to_vec(), Pick::Auto,
         Expect::Error("head.csv: no data rows: only a header (text, label)")),
        // missing column
        ("missing named column", "m.csv", b"phrase,mood\nhi,pos\nyo,pos\nno,neg\nnah,neg\n".to_vec(),
         Pick::Named("text", "mood"),
         Expect::Error("m.csv: no column named \"text\"; the columns are: phrase, mood")),
        ("column index out of range", "m.csv", rows(&["pos", "neg"], 2).into_bytes(), Pick::Index(0, 5),
         Expect::Error("there is no column 6 for the label; the file has 2 columns (column 1, column 2)")),
        ("one column only", "one.csv", b"text\nhello there\ngood bye\n".to_vec(), Pick::Index(0, 1),
         Expect::Error("only one column (\"text\") was found, so there is no label column")),
        ("same column twice", "m.csv", rows(&["pos", "neg"], 2).into_bytes(), Pick::Index(1, 1),
         Expect::Error("the text and the label are both column \"column 2\"")),
        // empty cells: skipped and counted
        ("empty cells", "e.csv", b"text,label\na,pos\n,neg\nb,neg\nc,\nd,pos\ne,neg\n".to_vec(), Pick::Auto,
         Expect::Warning("skipped 2 rows with an empty text or label (the first on line 3)")),
        ("only empty cells", "e.csv", b"text,label\n,pos\nb,\n".to_vec(), Pick::Auto,
         Expect::Error("no usable rows: every row has an empty text or label (2 rows skipped)")),
        // one class only
        ("one class", "one.csv", b"text,label\ngreat,pos\nfine,pos\nlovely,pos\n".to_vec(), Pick::Auto,
         Expect::Error("only one class (\"pos\") in the label column \"label\"; a classifier needs at least two")),
        // a class with a single example
        ("single example", "s.csv",
         (rows(&["pos", "neg"], 3) + "meh,neutral\n").into_bytes(), Pick::Index(0, 1),
         Expect::Error("class \"neutral\" has only one example; each class needs at least 2 (one to train, one to check)")),
        ("several single examples", "s.csv",
         (rows(&["pos", "neg"], 3) + "meh,neutral\nwhat,odd\n").into_bytes(), Pick::Index(0, 1),
         Expect::Error("2 classes have only one example (\"neutral\", \"odd\")")),
        // too many classes
        ("too many classes", "many.csv", too_many.into_bytes(), Pick::Auto,
         Expect::Error("the label column \"label\" has 150 different values; at most 100 classes")),
        // numeric vs string labels
        ("numbers mixed with words", "mix.csv",
         b"text,label\ngood,1\nbad,0\nok,pos\nfine,1\nugh,0\n".to_vec(), Pick::Auto,
         Expect::Error("mixes numbers and words (\"1\" on line 2, \"pos\" on line 4)")),
        ("regression target", "reg.csv", regression.into_bytes(), Pick::Named("text", "score"),
         Expect::Error("the label column \"score\" holds numbers with 37 distinct values; a classifier needs a few classes. Is this a regression target?")),
        // ragged rows: a few are skipped and counted, most means a wrong delimiter or quoting
        ("a ragged row", "r.csv",
         b"text,label\ngood,pos\nbad,neg\nfine, really,pos\nugh,neg\nyes,pos\n".to_vec(), Pick::Auto,
         Expect::Warning("skipped 1 row with a different number of fields (line 4 has 3 fields; the header has 2)")),
        ("mostly ragged rows", "r.csv",
         b"text,label\ngood, very,pos\nbad, very,neg\nfine,pos\nugh, no,neg\n".to_vec(), Pick::Index(0, 1),
         Expect::Error("3 of 4 rows do not have 2 fields (line 2 has 3 fields; the header has 2); check the delimiter (detected: ',')")),
        // quoted newlines: a quote that never closes
        ("unclosed quote", "q.csv",
         b"text,label\ngood,pos\n\"bad,neg\nfine,pos\nugh,neg\n".to_vec(), Pick::Auto,
         Expect::Error("q.csv: line 3: a quote (\") opens a field that never closes, so the rest of the file (3 lines) would be one cell")),
        // binary / not UTF-8
        ("binary renamed .csv", "image.csv", png.to_vec(), Pick::Auto,
         Expect::Error("image.csv: not a text CSV file (it looks binary)")),
        ("xlsx renamed .csv", "book.csv", xlsx.to_vec(), Pick::Auto,
         Expect::Error("book.csv: not a text CSV file (it is a zip archive, perhaps an Excel workbook)")),
        ("latin-1", "fr.csv", latin1.to_vec(), Pick::Auto,
         Expect::Error("fr.csv: not UTF-8 text (byte 0xE9 on line 2, offset 14); save it as UTF-8")),
        ("utf-16 with BOM", "w.csv", utf16, Pick::Auto,
         Expect::Error("w.csv: UTF-16 text, not UTF-8; save it as UTF-8")),
        ("utf-16 without BOM", "w.csv", utf16_no_bom, Pick::Auto,
         Expect::Error("w.csv: UTF-16 text, not UTF-8")),
        // too large for the browser
        ("too large", "big.csv", big, Pick::Auto,
         Expect::Error("big.csv: the file is 80.0 MB; the limit in the browser is 64 MB")),
    ];

    let mut failures = Vec::new();
    for (name, file, bytes, pick, expect) in &cases {
        let got = load(file, bytes, pick);
        let pass = match (expect, &got) {
            (Expect::Error(want), Err(e)) => e.contains(want),
            (Expect::Warning(want), Ok(d)) => d.warnings.iter().any(|w| w.contains(want)),
            _ => false,
        };
        if !pass {
            let shown = match &got {
                Ok(d) => format!("Ok(warnings {:?}, labels {:?})", d.warnings, d.label_names),
                Err(e) => format!("Err({e})"),
            };
            let want = match expect {
                Expect::Error(w) => format!("error containing {w:?}"),
                Expect::Warning(w) => format!("warning containing {w:?}"),
            };
            failures.push(format!("{name}: want {want}\n    got {shown}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn skipped_rows_are_counted() {
    let d = ok(
        "e.csv",
        "text,label\na,pos\n,neg\nb,neg\nc,\nd,pos\ne,neg\nx,y,z\n",
    );
    assert_eq!((d.skipped_empty, d.skipped_ragged), (2, 1));
    assert_eq!(d.texts, ["a", "b", "d", "e"]);
    assert_eq!(d.warnings.len(), 2);
}

#[test]
fn delimiters_are_detected() {
    for (delim, sep) in [(b',', ","), (b';', ";"), (b'\t', "\t"), (b'|', "|")] {
        let text = format!(
            "text{sep}label\nGood, really good{s2}pos\nBad; awful{s2}neg\nFine{s2}pos\nMeh{s2}neg\n",
            s2 = sep,
        )
        // Texts holding a comma must be quoted in a comma file.
        .replace("Good, really good,", "\"Good, really good\",")
        .replace("Bad; awful;", "\"Bad; awful\";");
        let table = CsvTable::parse("d.csv", text.as_bytes()).unwrap();
        assert_eq!(table.delimiter, delim, "{text:?}");
        assert_eq!(table.headers, ["text", "label"]);
        let d = table.dataset(0, 1).unwrap();
        assert_eq!(d.texts[0], "Good, really good");
        assert_eq!(d.texts[1], "Bad; awful");
        assert_eq!(d.label_names, ["neg", "pos"]);
    }
}

#[test]
fn delimiter_and_header_can_be_overridden() {
    let text = b"a;b,c\nd;e,f\n";
    let table = CsvTable::parse_with(
        "o.csv",
        text,
        CsvOptions {
            delimiter: Some(b';'),
            has_header: Some(false),
        },
    )
    .unwrap();
    assert_eq!(table.delimiter, b';');
    assert!(!table.has_header);
    assert_eq!(table.rows[1].cells, ["d", "e,f"]);
}

#[test]
fn bom_is_stripped() {
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(rows(&["pos", "neg"], 2).as_bytes());
    let mut with_header = b"\xEF\xBB\xBFtext,label\n".to_vec();
    with_header.extend_from_slice(rows(&["pos", "neg"], 2).as_bytes());
    let table = CsvTable::parse("bom.csv", &with_header).unwrap();
    assert!(table.has_header);
    assert_eq!(table.headers, ["text", "label"]);
    assert_eq!(table.guess_columns(), (Some(0), Some(1)));
    let table = CsvTable::parse("bom.csv", &bytes).unwrap();
    assert_eq!(table.rows[0].cells, ["pos example 0", "pos"]);
}

#[test]
fn header_or_not() {
    // Known names.
    let t = CsvTable::parse("h.csv", b"Sentence,Label\nhi,a\nyo,b\n").unwrap();
    assert!(t.has_header);
    // Unknown names over a repeating column they are not part of.
    let t = CsvTable::parse("h.csv", b"phrase,mood\nhi,pos\nyo,pos\nno,neg\nnah,neg\n").unwrap();
    assert!(t.has_header);
    assert_eq!(t.guess_columns(), (Some(0), Some(1)));
    // A word over numbers.
    let t = CsvTable::parse("h.csv", b"words,stars\nhi,1\nyo,2\nno,1\n").unwrap();
    assert!(t.has_header);
    // Data from the first line: no header, synthesised names.
    let t = CsvTable::parse("n.csv", rows(&["pos", "neg"], 3).as_bytes()).unwrap();
    assert!(!t.has_header);
    assert_eq!(t.headers, ["column 1", "column 2"]);
    assert_eq!(t.rows.len(), 6);
    assert_eq!(t.rows[0].line, 1);
    // Numbers in the first row: data.
    let t = CsvTable::parse("n.csv", b"1,good stuff\n0,bad stuff\n1,ok\n0,no\n").unwrap();
    assert!(!t.has_header);
    assert_eq!(t.guess_columns(), (Some(1), Some(0)));
}

#[test]
fn quoted_newlines_and_delimiters() {
    let text = "text,label\n\"line one\nline two, with a comma\",pos\n\"say \"\"hi\"\"\",neg\nplain,pos\nother,neg\n";
    let table = CsvTable::parse("q.csv", text.as_bytes()).unwrap();
    assert_eq!(table.rows.len(), 4);
    assert_eq!(table.rows[0].cells[0], "line one\nline two, with a comma");
    assert_eq!(table.rows[1].cells[0], "say \"hi\"");
    // Lines are the file's: the second record starts on line 4.
    assert_eq!(table.rows[1].line, 4);
    let d = table.dataset(0, 1).unwrap();
    assert_eq!(d.texts.len(), 4);
    assert!(d.warnings.is_empty());
}

#[test]
fn columns_are_picked_for_common_layouts() {
    let cases: &[(&str, (usize, usize))] = &[
        ("text,label\nhi there,pos\nbye now,neg\n", (0, 1)),
        ("sentence,label\nhi there,1\nbye now,0\n", (0, 1)),
        ("id,review,sentiment\n1,hi there,positive\n2,bye now,negative\n", (1, 2)),
        ("label,text\npos,hi there\nneg,bye now\n", (1, 0)),
        ("Review Text,Rating\nnice one,5\nbad one,1\n", (0, 1)),
        (
            "id,body,topic,lang\n1,some long text here,sport,en\n2,another long text,news,en\n",
            (1, 2),
        ),
        // No header: the long column is the text, the repeating one the label.
        (
            "7,a fairly long sentence here,pos\n8,another long sentence,neg\n9,and one more,pos\n10,the last one,neg\n",
            (1, 2),
        ),
    ];
    for (text, want) in cases {
        let t = CsvTable::parse("c.csv", text.as_bytes()).unwrap();
        assert_eq!(
            t.guess_columns(),
            (Some(want.0), Some(want.1)),
            "{text:?} headers {:?}",
            t.headers
        );
    }
}

#[test]
fn class_counts_and_own_label_names() {
    let d = ok(
        "c.csv",
        "text,label\na,Positive\nb,negative\nc,Positive\nd,negative\ne,Positive\nf,neutral\ng,neutral\n",
    );
    assert_eq!(d.label_names, ["negative", "neutral", "Positive"]);
    assert_eq!(d.class_counts(), [2, 2, 3]);
    assert_eq!(d.labels, [2, 0, 2, 0, 2, 1, 1]);
    let t = CsvTable::parse("c.csv", b"text,label\na,x\nb,y\nc,x\nd,y\n").unwrap();
    assert_eq!(t.preview(2).len(), 2);
    assert_eq!(t.preview(2)[1].cells, ["b", "y"]);
    assert_eq!(t.preview(100).len(), 4);
}

#[test]
fn numeric_labels_sort_numerically() {
    let d = ok("n.csv", &rows(&["10", "2", "1", "0"], 2));
    assert_eq!(d.label_names, ["0", "1", "2", "10"]);
    assert_eq!(d.class_counts(), [2, 2, 2, 2]);
    // Float-written classes (as pandas writes them) stay classes, with their own strings.
    let d = ok("f.csv", &rows(&["1.0", "0.0", "2.5"], 2));
    assert_eq!(d.label_names, ["0.0", "1.0", "2.5"]);
}

#[test]
fn at_most_max_classes() {
    let names: Vec<String> = (0..MAX_CLASSES).map(|i| format!("c{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let d = load("m.csv", rows(&refs, 2).as_bytes(), &Pick::Index(0, 1)).unwrap();
    assert_eq!(d.label_names.len(), MAX_CLASSES);
}

#[test]
fn stratified_split_properties() {
    // 60 / 30 / 9 / 1 examples of four classes, interleaved.
    let mut labels = Vec::new();
    for i in 0..100u32 {
        labels.push(match i % 10 {
            0..=5 => 0,
            6..=8 => 1,
            _ => 2,
        });
    }
    labels[99] = 3; // a class with a single example
    let (train, val) = stratified_split(&labels, 0.2, 42);

    // Disjoint, and together every index once.
    let mut all: Vec<usize> = train.iter().chain(&val).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..labels.len()).collect::<Vec<_>>());

    let count = |idx: &[usize], c: u32| idx.iter().filter(|&&i| labels[i] == c).count();
    assert_eq!((count(&val, 0), count(&train, 0)), (12, 48));
    assert_eq!((count(&val, 1), count(&train, 1)), (6, 24));
    assert_eq!((count(&val, 2), count(&train, 2)), (2, 7));
    assert_eq!((count(&val, 3), count(&train, 3)), (0, 1));

    // Deterministic per seed; another seed gives another split.
    assert_eq!(stratified_split(&labels, 0.2, 42), (train.clone(), val.clone()));
    assert_ne!(stratified_split(&labels, 0.2, 7).1, val);

    // Every class with two examples is in both parts, even with a tiny or huge fraction.
    let pairs = [0, 0, 1, 1, 2, 2];
    for fraction in [0.01, 0.5, 0.99] {
        let (t, v) = stratified_split(&pairs, fraction, 1);
        for c in 0..3 {
            assert_eq!(t.iter().filter(|&&i| pairs[i] == c).count(), 1);
            assert_eq!(v.iter().filter(|&&i| pairs[i] == c).count(), 1);
        }
    }
    // No fraction: everything trains.
    assert_eq!(stratified_split(&pairs, 0.0, 1), ((0..6).collect(), vec![]));
}

#[test]
fn nothing_panics_on_odd_input() {
    // Every prefix of a file full of quoting and delimiters, and pseudo-random bytes: each
    // gives a table or a message, never a panic.
    let good = "text;label\n\"a;\"\"b\"\"\nc\";x\n;y\nd;\ne;x;z\nf;y\n\u{e9}t\u{e9};x\n";
    let mut inputs: Vec<Vec<u8>> = (0..=good.len())
        .filter(|&n| good.is_char_boundary(n))
        .map(|n| good.as_bytes()[..n].to_vec())
        .collect();
    let mut state = 1u64;
    for len in [1, 2, 7, 64, 500] {
        for _ in 0..20 {
            inputs.push(
                (0..len)
                    .map(|_| {
                        state = state
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        // Mostly CSV-ish bytes, sometimes anything.
                        let b = (state >> 33) as u8;
                        if b < 200 {
                            b"ab,;\t|\"\n\r 1.5x"[b as usize % 14]
                        } else {
                            b
                        }
                    })
                    .collect(),
            );
        }
    }
    for bytes in &inputs {
        if let Ok(table) = CsvTable::parse("odd.csv", bytes) {
            let _ = table.preview(3);
            let (t, l) = table.guess_columns();
            for (t, l) in [(t.unwrap_or(0), l.unwrap_or(1)), (0, 1), (1, 0), (2, 9)] {
                if let Ok(d) = table.dataset(t, l) {
                    assert_eq!(d.texts.len(), d.labels.len());
                    let (tr, va) = stratified_split(&d.labels, 0.25, 3);
                    assert_eq!(tr.len() + va.len(), d.labels.len());
                }
            }
        }
    }
}
