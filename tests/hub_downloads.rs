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

// Known vectors: FIPS 180-2 (sha256 of "abc" and of nothing) and git's own blob ids
// (`printf 'Hello, World!' | git hash-object --stdin`; the empty blob).
const SHA256_ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const SHA256_EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const GIT_HELLO: &str = "b45ef6fec89518d314f546fd6c3025367b721684";
const GIT_EMPTY: &str = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391";

#[test]
fn digests_match_known_vectors_in_one_go_and_chunk_by_chunk() {
    let sha = Expected::Sha256(SHA256_ABC.into());
    let git = Expected::GitSha1(GIT_HELLO.into());
    assert_eq!(digest(&sha, b"abc"), SHA256_ABC);
    assert_eq!(digest(&sha, b""), SHA256_EMPTY);
    assert_eq!(digest(&git, b"Hello, World!"), GIT_HELLO);
    assert_eq!(digest(&git, b""), GIT_EMPTY);
    // A git blob id is not the sha1 of the bytes alone (that is 0a0a9f2a…).
    assert_ne!(
        digest(&git, b"Hello, World!"),
        "0a0a9f2a6772942557ab5355d76af442f8f65e01"
    );
    // As bytes arrive in uneven chunks (what a stream and a Range resume give).
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect();
    for expected in [&sha, &git] {
        let whole = digest(expected, &data);
        let mut h = Hasher::new(expected, Some(data.len() as u64)).unwrap();
        for chunk in data.chunks(7_777) {
            h.update(chunk);
        }
        assert_eq!(h.finish(), whole);
    }
    // The git blob id needs the length first.
    assert!(Hasher::new(&git, None).is_none());
    assert!(Hasher::new(&sha, None).is_some());
}

#[test]
fn etags_are_read_as_the_hub_writes_them() {
    assert_eq!(
        parse_etag(&format!("\"{}\"", SHA256_ABC.to_uppercase())),
        Some(Expected::Sha256(SHA256_ABC.into()))
    );
    assert_eq!(
        parse_etag(&format!("W/\"{GIT_HELLO}\"")),
        Some(Expected::GitSha1(GIT_HELLO.into()))
    );
    // A static server's tags (size-mtime, md5) say nothing about sha256 or git.
    for other in [
        "\"5f3a-18c2b\"",
        "\"d41d8cd98f00b204e9800998ecf8427e\"",
        "",
        "\"xyz\"",
    ] {
        assert_eq!(parse_etag(other), None, "{other}");
    }
    let linked = format!("\"{SHA256_ABC}\"");
    let etag = format!("\"{GIT_HELLO}\"");
    // X-Linked-Etag wins wherever it comes.
    assert_eq!(
        expected_from_headers(Some(&linked), Some(&etag), true),
        Some(Expected::Sha256(SHA256_ABC.into()))
    );
    // A file the hub serves itself: its ETag is the git blob id.
    assert_eq!(
        expected_from_headers(None, Some(&etag), false),
        Some(Expected::GitSha1(GIT_HELLO.into()))
    );
    // After a redirect the ETag is the CDN's own: not a promise about the bytes.
    assert_eq!(expected_from_headers(None, Some(&linked), true), None);
    // No headers (a mirror, or not exposed to the page): not verified, not an error.
    assert_eq!(expected_from_headers(None, None, false), None);
    let kept = Expected::Sha256(SHA256_ABC.into()).to_header();
    assert_eq!(kept, format!("sha256:{SHA256_ABC}"));
    assert_eq!(
        Expected::from_header(&kept),
        Some(Expected::Sha256(SHA256_ABC.into()))
    );
    assert_eq!(
        Expected::from_header(&format!("git-sha1:{GIT_HELLO}")),
        Some(Expected::GitSha1(GIT_HELLO.into()))
    );
    assert_eq!(Expected::from_header(&format!("sha256:{GIT_HELLO}")), None);
}

#[test]
fn the_api_listing_gives_sha256_for_lfs_files_and_blob_ids_for_the_rest() {
    assert_eq!(
        api_revision_url("https://huggingface.co/", "google/vit-base-patch16-224", "main"),
        "https://huggingface.co/api/models/google/vit-base-patch16-224/revision/main?blobs=true"
    );
    assert_eq!(
        api_revision_url("http://h", "a/b", "refs/pr/1"),
        "http://h/api/models/a/b/revision/refs%2Fpr%2F1?blobs=true"
    );
    // The shape of the hub's answer (huggingface_hub's RepoSibling: rfilename, size,
    // blobId, lfs {size, sha256, pointerSize}).
    let json = format!(
        r#"{{"id":"a/b","sha":"0123","siblings":[
            {{"rfilename":"config.json","size":13,"blobId":"{GIT_HELLO}"}},
            {{"rfilename":"model.safetensors","size":3,"blobId":"1111111111111111111111111111111111111111",
              "lfs":{{"size":3,"sha256":"{SHA256_ABC}","pointerSize":130}}}},
            {{"rfilename":"README.md"}},
            {{"rfilename":"odd.bin","blobId":"not-a-hash"}}]}}"#
    );
    let listed = expected_from_api(json.as_bytes()).unwrap();
    assert_eq!(
        listed.get("config.json"),
        Some(&(Expected::GitSha1(GIT_HELLO.into()), Some(13)))
    );
    // For an LFS file the blobId is the pointer's: the sha256 of the bytes is what counts.
    assert_eq!(
        listed.get("model.safetensors"),
        Some(&(Expected::Sha256(SHA256_ABC.into()), Some(3)))
    );
    assert_eq!(listed.len(), 2);
    assert!(expected_from_api(b"<html>").unwrap_err().contains("HTML page"));
    assert!(expected_from_api(b"{}").unwrap_err().contains("no siblings"));
}

#[test]
fn a_mismatch_names_the_file_the_repo_and_both_hashes() {
    let expected = Expected::Sha256(SHA256_ABC.into());
    check_digest("model.safetensors", "a/b", &expected, SHA256_ABC).unwrap();
    let e = check_digest("model.safetensors", "a/b", &expected, SHA256_EMPTY).unwrap_err();
    assert!(
        e.starts_with(
            "model.safetensors from a/b: checksum mismatch, expected sha256 ba7816bf8f01cfea…, got \
             e3b0c44298fc1c14…; it was not stored"
        ),
        "{e}"
    );
    let git = Expected::GitSha1(GIT_HELLO.into());
    let e = check_digest("config.json", "a/b", &git, GIT_EMPTY).unwrap_err();
    assert!(
        e.contains("expected git blob sha1 b45ef6fec89518d3…, got e69de29bb2d1d643…"),
        "{e}"
    );
    let s = stored_mismatch("model.safetensors", "a/b", &expected, SHA256_EMPTY);
    assert!(
        s.contains("stored copy of model.safetensors from a/b was damaged"),
        "{s}"
    );
}

/// The worker's two-step load (`BuildModel`, then `UseBuiltModel`): Cancel during the build
/// drops the new model, and the one loaded before keeps answering.
#[test]
fn a_built_model_that_is_dropped_leaves_the_loaded_one_in_use() {
    use webformer::protocol::{Request, Response};
    use webformer::service::{Ctx, Service};
    let files = |name: &str| -> (Vec<String>, Vec<Vec<u8>>) {
        let dir = std::path::Path::new("tests/fixtures").join(name);
        let names = ["config.json", "model.safetensors", "tokenizer.json"];
        (
            names.iter().map(|n| n.to_string()).collect(),
            names
                .iter()
                .map(|n| std::fs::read(dir.join(n)).unwrap())
                .collect(),
        )
    };
    let mut service = Service::new();
    let mut call = |request: Request, files: Vec<Vec<u8>>| {
        pollster::block_on(service.handle(request, files, &Ctx::quiet()))
    };
    let classify = Request::ClassifyText {
        texts: vec!["a fine film".into()],
        attentions: false,
    };
    assert!(matches!(call(classify.clone(), vec![]), Response::Error { .. }));

    let (names, bytes) = files("bert-uncased-cls");
    let r = call(
        Request::BuildModel {
            source: "first".into(),
            names,
        },
        bytes,
    );
    assert!(
        matches!(&r, Response::ModelLoaded(i) if i.source == "first"),
        "{r:?}"
    );
    // Built, not in use yet.
    assert!(matches!(call(classify.clone(), vec![]), Response::Error { .. }));
    let r = call(Request::UseBuiltModel { keep: true }, vec![]);
    assert!(
        matches!(&r, Response::ModelLoaded(i) if i.source == "first"),
        "{r:?}"
    );
    let Response::TextResults { results: before } = call(classify.clone(), vec![]) else {
        panic!("the first model classifies");
    };

    let (names, bytes) = files("bert-cased-cls");
    let r = call(
        Request::BuildModel {
            source: "second".into(),
            names,
        },
        bytes,
    );
    assert!(
        matches!(&r, Response::ModelLoaded(i) if i.source == "second"),
        "{r:?}"
    );
    assert_eq!(
        call(Request::UseBuiltModel { keep: false }, vec![]),
        Response::Done
    );
    let Response::TextResults { results: after } = call(classify.clone(), vec![]) else {
        panic!("the first model still classifies");
    };
    assert_eq!(before, after, "the model loaded before is still the one in use");
    // Nothing is waiting any more.
    assert!(matches!(
        call(Request::UseBuiltModel { keep: true }, vec![]),
        Response::Error { message } if message.contains("no built model")
    ));
    // Kept, the second model answers differently: the comparison above could fail.
    let (names, bytes) = files("bert-cased-cls");
    call(
        Request::BuildModel {
            source: "second".into(),
            names,
        },
        bytes,
    );
    let r = call(Request::UseBuiltModel { keep: true }, vec![]);
    assert!(
        matches!(&r, Response::ModelLoaded(i) if i.source == "second"),
        "{r:?}"
    );
    let Response::TextResults { results: second } = call(classify, vec![]) else {
        panic!("the second model classifies");
    };
    assert_ne!(before, second);
}
