//! The downloader's decisions (URLs, repo ids, Range resume, what a bad file says), checked
//! natively; the browser test tests/e2e/hub.test.mjs runs them against a local hub.

use webformer::hub::*;

#[test]
fn resolve_urls_follow_the_hub_layout() {
    assert_eq!(
        resolve_url(
            "https://huggingface.co/",
            "google/vit-base-patch16-224",
            "main",
            "config.json"
        ),
        "https://huggingface.co/google/vit-base-patch16-224/resolve/main/config.json"
    );
    assert_eq!(
        resolve_url("http://127.0.0.1:9/hub", "a/b", "v1.0", "model.safetensors"),
        "http://127.0.0.1:9/hub/a/b/resolve/v1.0/model.safetensors"
    );
    assert_eq!(
        split_revision("a/b@refs-pr-1"),
        ("a/b".into(), "refs-pr-1".into())
    );
    assert_eq!(split_revision(" a/b "), ("a/b".into(), "main".into()));
    assert_eq!(
        check_base("https://hf-mirror.example/ ").unwrap(),
        "https://hf-mirror.example"
    );
    assert!(check_base("ftp://x")
        .unwrap_err()
        .contains("must start with https://"));
}

#[test]
fn repo_ids_are_checked_before_any_request() {
    for ok in [
        "google/vit-base-patch16-224",
        "distilbert-base-uncased-finetuned-sst-2-english",
        "a_b/c.d",
    ] {
        check_repo_id(ok).unwrap();
    }
    for bad in ["", "a/b/c", "../etc", "a/", "a b/c", "a/.hidden", "a/b-"] {
        let e = check_repo_id(bad).unwrap_err();
        assert!(e.contains("repo id"), "{bad:?}: {e}");
    }
}

#[test]
fn range_answers_decide_append_or_restart() {
    assert_eq!(parse_content_range("bytes 100-199/200"), Some((100, Some(200))));
    assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
    assert_eq!(parse_content_range("items 1-2/3"), None);
    assert_eq!(resume_kind(100, 206, Some("bytes 100-199/200")), Resume::Append);
    // A server that ignores Range sends the whole file again.
    assert_eq!(resume_kind(100, 200, None), Resume::Restart);
    // A range that starts elsewhere cannot be appended.
    assert_eq!(resume_kind(100, 206, Some("bytes 0-199/200")), Resume::Restart);
    assert_eq!(resume_kind(100, 206, None), Resume::Restart);
    assert_eq!(
        (1..=4).map(backoff_ms).collect::<Vec<_>>(),
        vec![500, 1000, 2000, 4000]
    );
}

#[test]
fn bad_files_get_specific_messages() {
    let html = check_json("config.json", b"\n <!doctype html><html>login</html>").unwrap_err();
    assert!(
        html.contains("config.json: the server sent an HTML page instead of JSON"),
        "{html}"
    );
    assert_eq!(
        check_json("tokenizer.json", b"  ").unwrap_err(),
        "tokenizer.json is empty"
    );
    assert!(check_json("config.json", b"{\"a\":")
        .unwrap_err()
        .starts_with("config.json is not valid JSON"));
    assert!(status_message("config.json", "http://h/x", 404).contains("not found at http://h/x (404)"));
    assert!(status_message("model.safetensors", "u", 401).contains("gated or private"));
}

#[test]
fn shard_indexes_list_each_shard_once() {
    let index = br#"{"metadata":{},"weight_map":{"a":"model-00002-of-00002.safetensors",
        "b":"model-00001-of-00002.safetensors","c":"model-00001-of-00002.safetensors"}}"#;
    assert_eq!(
        shard_names(index).unwrap(),
        vec![
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors"
        ]
    );
    let evil = br#"{"weight_map":{"a":"../../secret.safetensors"}}"#;
    assert!(shard_names(evil)
        .unwrap_err()
        .contains("not a .safetensors file of the repo"));
    assert!(shard_names(b"{}").unwrap_err().contains("no weight_map"));
}

#[test]
fn progress_text_names_the_file_and_the_total() {
    assert_eq!(
        progress_text(
            "model.safetensors",
            1_200_000,
            Some(4_500_000),
            3_000_000,
            10_000_000
        ),
        "model.safetensors 1.2 / 4.5 MB, total 30%"
    );
    assert_eq!(
        progress_text("config.json", 600, None, 0, 0),
        "config.json 0.0 MB"
    );
}
