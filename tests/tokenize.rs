//! The tokenizer wrapper on the bundled demo tokenizer (BERT uncased WordPiece).
//! Ids against Python `tokenizers` on a varied corpus are checked with the engine fixtures.

use std::path::Path;

use webformer::engine::tokenize::TextTokenizer;

fn demo() -> TextTokenizer {
    TextTokenizer::from_file(Path::new("public/demo/tokenizer.json"), None).expect("demo tokenizer loads")
}

#[test]
fn encodes_with_special_tokens_and_offsets() {
    let tokens = demo().encode("Hello, world!").unwrap();
    let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
    // Ids of the public bert-base-uncased vocabulary.
    assert_eq!(ids, vec![101, 7592, 1010, 2088, 999, 102]);
    let texts: Vec<&str> = tokens.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(texts, vec!["[CLS]", "hello", ",", "world", "!", "[SEP]"]);
    assert!(tokens[0].special && tokens[5].special && !tokens[1].special);
    assert_eq!((tokens[3].start, tokens[3].end), (7, 12));
}

#[test]
fn splits_unknown_words_into_wordpieces() {
    let texts: Vec<String> = demo()
        .encode("tokenization")
        .unwrap()
        .into_iter()
        .map(|t| t.text)
        .collect();
    assert_eq!(texts, vec!["[CLS]", "token", "##ization", "[SEP]"]);
}

#[test]
fn file_presets_are_dropped_and_max_len_truncates() {
    // The demo file carries a 128-token truncation preset; inputs are encoded as given.
    let long = "word ".repeat(300);
    assert_eq!(demo().encode_ids(&long).unwrap().len(), 302);
    let truncated = TextTokenizer::from_file(Path::new("public/demo/tokenizer.json"), Some(16)).unwrap();
    let ids = truncated.encode_ids(&long).unwrap();
    assert_eq!(ids.len(), 16);
    assert_eq!((ids[0], ids[15]), (101, 102));
}

#[test]
fn bad_file_names_the_file() {
    let err = TextTokenizer::from_bytes("broken.json", b"{\"not\": \"a tokenizer\"}", None)
        .err()
        .expect("must fail")
        .to_string();
    assert!(err.starts_with("broken.json: not a valid tokenizer"), "{err}");
    let err = TextTokenizer::from_file(Path::new("no/such/tokenizer.json"), None)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no/such/tokenizer.json"), "{err}");
}
