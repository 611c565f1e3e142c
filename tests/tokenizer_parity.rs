//! Token ids equal Python `tokenizers` (the ids make_fixtures.py recorded) on a varied
//! corpus: accents, emoji, CJK, Arabic, Cyrillic, long words, punctuation, empty input,
//! and a long text truncated to the model's maximum length.

mod common;

use common::*;
use webformer::engine::config::ModelConfig;
use webformer::engine::tokenize::TextTokenizer;

#[test]
fn ids_equal_python_on_every_text_fixture() {
    for name in [
        "bert-uncased-cls",
        "bert-cased-cls",
        "distilbert-cls",
        "bert-encoder",
    ] {
        let dir = fixture(name);
        let config =
            ModelConfig::from_json("config.json", &std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        let max_len = config.max_positions();
        let tok = TextTokenizer::from_file(&dir.join("tokenizer.json"), max_len).unwrap();
        let g = golden_json(name);
        let corpus = g["token_corpus"].as_array().unwrap();
        let expected = g["token_ids"].as_array().unwrap();
        assert!(corpus.len() >= 15);
        let mut truncated = 0;
        for (text, ids) in corpus.iter().zip(expected) {
            let text = text.as_str().unwrap();
            let want: Vec<u32> = ids
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(tok.encode_ids(text).unwrap(), want, "{name}: {text:?}");
            if Some(want.len()) == max_len {
                truncated += 1;
            }
        }
        assert!(truncated >= 1, "{name}: the corpus must exercise truncation");
    }
}
