//! Model downloads without web APIs: hub URLs, repo ids, what arrived and whether it is
//! what was asked for, progress text. The page's downloader (`ui/models.rs`) does the
//! fetching; keeping the decisions here lets native tests check them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The Hugging Face hub; the page lets the user (or `?hub=URL`) point elsewhere.
pub const DEFAULT_HUB: &str = "https://huggingface.co";
/// The Cache API cache that keeps downloaded files between visits.
pub const CACHE_NAME: &str = "webformer-models";
/// Attempts per file after the first, when the network fails midway.
pub const RETRIES: u32 = 4;

/// A model the catalogue offers from the hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HubDefault {
    pub repo: &'static str,
    pub title: &'static str,
}

/// Good hub models for each task (online use).
pub const HUB_DEFAULTS: [HubDefault; 3] = [
    HubDefault {
        repo: "distilbert-base-uncased-finetuned-sst-2-english",
        title: "Sentiment: DistilBERT SST-2 (268 MB)",
    },
    HubDefault {
        repo: "google/vit-base-patch16-224",
        title: "Images: ViT-Base ImageNet (346 MB)",
    },
    HubDefault {
        repo: "sentence-transformers/all-MiniLM-L6-v2",
        title: "Encoder for fine-tuning: all-MiniLM-L6-v2 (91 MB)",
    },
];

/// `models/index.json`, written by `scripts/offline-models.sh` next to the site: the
/// models the site itself serves, so it works with no internet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OfflineIndex {
    pub models: Vec<OfflineModel>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OfflineModel {
    /// Folder under `models/`.
    pub id: String,
    pub title: String,
    pub files: Vec<OfflineFile>,
    /// A trained head (`head.safetensors`, path under `models/`) installed with the model.
    #[serde(default)]
    pub head: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OfflineFile {
    pub name: String,
    pub size: u64,
}

/// `owner/name` (or a bare legacy `name`) as the hub spells repo ids.
pub fn check_repo_id(id: &str) -> Result<(), String> {
    let parts: Vec<&str> = id.split('/').collect();
    let ok_part = |p: &str| {
        !p.is_empty()
            && p.len() <= 96
            && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && !p.starts_with(['-', '.'])
            && !p.ends_with(['-', '.'])
            && !p.contains("..")
    };
    if id.is_empty() {
        return Err("type a hub repo id, e.g. google/vit-base-patch16-224".into());
    }
    if parts.len() > 2 || !parts.iter().all(|p| ok_part(p)) {
        return Err(format!(
            "{id:?} is not a hub repo id: expected owner/name with letters, digits, '-', '_' or '.', \
             e.g. google/vit-base-patch16-224"
        ));
    }
    Ok(())
}

/// Splits `repo@revision` (revision defaults to `main`).
pub fn split_revision(input: &str) -> (String, String) {
    match input.trim().split_once('@') {
        Some((repo, rev)) if !rev.is_empty() => (repo.to_string(), rev.to_string()),
        Some((repo, _)) => (repo.to_string(), "main".into()),
        None => (input.trim().to_string(), "main".into()),
    }
}

/// The hub's `resolve` URL of one file of a repo.
pub fn resolve_url(base: &str, repo: &str, revision: &str, file: &str) -> String {
    format!("{}/{repo}/resolve/{revision}/{file}", base.trim_end_matches('/'))
}

/// Checks a base URL typed by the user: http(s) only.
pub fn check_base(base: &str) -> Result<String, String> {
    let b = base.trim().trim_end_matches('/');
    if b.starts_with("https://") || b.starts_with("http://") {
        Ok(b.to_string())
    } else {
        Err(format!(
            "hub URL {base:?} must start with https:// (or http:// for a local mirror)"
        ))
    }
}

/// What the user reads for a failed HTTP answer.
pub fn status_message(file: &str, url: &str, status: u16) -> String {
    match status {
        404 => format!("{file}: not found at {url} (404): check the repo id and revision"),
        401 | 403 => format!(
            "{file}: the hub refused access ({status}): the repo is gated or private; webformer \
             downloads public models only (or open the files locally)"
        ),
        416 => format!("{file}: the server rejected the byte range asked for (416)"),
        429 => format!("{file}: the hub asks to slow down (429); try again in a minute"),
        s => format!("{file}: the server answered HTTP {s} for {url}"),
    }
}

/// A JSON file as it arrived: an HTML page (a login wall, a wrong mirror, an error page)
/// or an empty or broken file each gets its own message.
pub fn check_json(file: &str, bytes: &[u8]) -> Result<serde_json::Value, String> {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    let Some(start) = start else {
        return Err(format!("{file} is empty"));
    };
    if bytes[start] == b'<' {
        return Err(format!(
            "{file}: the server sent an HTML page instead of JSON (a wrong hub URL, a login or an \
             error page?)"
        ));
    }
    serde_json::from_slice(&bytes[start..]).map_err(|e| format!("{file} is not valid JSON: {e}"))
}

/// The shard files a `model.safetensors.index.json` lists, each once, sorted.
pub fn shard_names(index: &[u8]) -> Result<Vec<String>, String> {
    let file = "model.safetensors.index.json";
    let value = check_json(file, index)?;
    let map = value
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| format!("{file} has no weight_map"))?;
    let mut shards = Vec::new();
    for v in map.values() {
        let s = v
            .as_str()
            .ok_or_else(|| format!("{file}: weight_map values must be file names"))?;
        if s.contains('/') || s.contains("..") || !s.ends_with(".safetensors") {
            return Err(format!(
                "{file} lists {s:?}, which is not a .safetensors file of the repo"
            ));
        }
        shards.push(s.to_string());
    }
    shards.sort();
    shards.dedup();
    if shards.is_empty() {
        return Err(format!("{file} lists no shards"));
    }
    Ok(shards)
}

/// `Content-Range: bytes START-END/TOTAL` → (START, TOTAL if known).
pub fn parse_content_range(header: &str) -> Option<(u64, Option<u64>)> {
    let rest = header.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    let start = start.trim().parse().ok()?;
    let total = total.trim().parse().ok();
    Some((start, total))
}

/// How a response to a request for bytes from `have` on is to be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// Append: the server sent the rest (206 from `have`).
    Append,
    /// Start over: the server sent the whole file (200: it ignores `Range`), or a range
    /// that does not start where we are.
    Restart,
}

/// Decides how to use an answer with `status` (and its `Content-Range`) when `have` bytes
/// are already here.
pub fn resume_kind(have: u64, status: u16, content_range: Option<&str>) -> Resume {
    if have > 0 && status == 206 {
        if let Some((start, _)) = content_range.and_then(parse_content_range) {
            if start == have {
                return Resume::Append;
            }
        }
    }
    Resume::Restart
}

/// Milliseconds to wait before retry `attempt` (1-based): 0.5 s, 1 s, 2 s, 4 s.
pub fn backoff_ms(attempt: u32) -> u32 {
    500u32.saturating_mul(1 << attempt.saturating_sub(1).min(6))
}

/// Megabytes with one decimal ("4.5").
pub fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

/// "model.safetensors 1.2 / 4.5 MB, total 30%": the file being downloaded and all files.
pub fn progress_text(file: &str, done: u64, size: Option<u64>, all_done: u64, all_total: u64) -> String {
    let file_part = match size {
        Some(s) => format!("{file} {} / {} MB", mb(done), mb(s)),
        None => format!("{file} {} MB", mb(done)),
    };
    if all_total == 0 {
        return file_part;
    }
    let pct = (all_done.min(all_total) as f64 * 100.0 / all_total as f64).floor();
    format!("{file_part}, total {pct:.0}%")
}

// ---------------------------------------------------------------------------------------
// Integrity: what the hub says a file's bytes hash to, and whether they do.

/// What a downloaded file is checked against, as the hub states it.
///
/// The Hugging Face hub names every file by a hash: an LFS file (the weights) by the
/// sha256 of its bytes, any other (small) file by its git blob id, which is
/// `sha1("blob {len}\0" + bytes)`. It says so in two places:
///
/// - the API, `GET {base}/api/models/{repo}/revision/{revision}?blobs=true`:
///   `siblings[].lfs.sha256` (and `.size`) for LFS files, `siblings[].blobId` for the others
///   ([`expected_from_api`]);
/// - the `resolve` answer's headers: `X-Linked-Etag` (a quoted sha256) on the hub's
///   redirect of an LFS file, `ETag` (the quoted git blob id) on a small file it serves
///   itself ([`expected_from_headers`]).
///
/// Decision: the API listing comes first, the headers second, and a file neither
/// describes is used unverified with a visible note, never refused: mirrors and plain
/// file servers may send neither, and a header a server does not expose to the page
/// (`Access-Control-Expose-Headers`) reads as absent. A browser follows the hub's
/// redirect of an LFS file by itself, and the CDN's answer at the end carries its own
/// `ETag` (also 64 hex digits, but not the file's sha256): so an `ETag` counts only on an
/// answer that was not redirected; `X-Linked-Etag` is the hub's own word wherever it
/// comes. An `ETag` of another shape (a weak or md5 tag of a static server) means nothing
/// here and is ignored. A mismatch is an error: the file is not stored, nor used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expected {
    /// sha256 of the bytes (LFS files), 64 lowercase hex digits.
    Sha256(String),
    /// The git blob id: sha1 of `"blob {len}\0"` and the bytes, 40 lowercase hex digits.
    GitSha1(String),
}

impl Expected {
    pub fn algorithm(&self) -> &'static str {
        match self {
            Expected::Sha256(_) => "sha256",
            Expected::GitSha1(_) => "git blob sha1",
        }
    }

    pub fn hex(&self) -> &str {
        match self {
            Expected::Sha256(h) | Expected::GitSha1(h) => h,
        }
    }

    /// How it is kept next to a stored file (`x-webformer-checksum`): "sha256:<hex>".
    pub fn to_header(&self) -> String {
        match self {
            Expected::Sha256(h) => format!("sha256:{h}"),
            Expected::GitSha1(h) => format!("git-sha1:{h}"),
        }
    }

    pub fn from_header(value: &str) -> Option<Self> {
        let (kind, hex) = value.trim().split_once(':')?;
        let e = parse_etag(hex)?;
        match (kind, e) {
            ("sha256", e @ Expected::Sha256(_)) | ("git-sha1", e @ Expected::GitSha1(_)) => Some(e),
            _ => None,
        }
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// An `ETag`/`X-Linked-Etag` value as the hub writes it (`"<hex>"`, possibly weak `W/"…"`):
/// 64 hex digits are a sha256, 40 a git blob id; anything else says nothing.
pub fn parse_etag(value: &str) -> Option<Expected> {
    let v = value.trim();
    let v = v.strip_prefix("W/").unwrap_or(v);
    let v = v.trim_matches('"').to_ascii_lowercase();
    if is_hex(&v, 64) {
        Some(Expected::Sha256(v))
    } else if is_hex(&v, 40) {
        Some(Expected::GitSha1(v))
    } else {
        None
    }
}

/// What the headers of a `resolve` answer promise (see [`Expected`]): `X-Linked-Etag`
/// wherever it comes, `ETag` only when the answer was not redirected (a CDN's own tag).
pub fn expected_from_headers(
    linked_etag: Option<&str>,
    etag: Option<&str>,
    redirected: bool,
) -> Option<Expected> {
    if let Some(e) = linked_etag.and_then(parse_etag) {
        return Some(e);
    }
    if redirected {
        return None;
    }
    etag.and_then(parse_etag)
}

/// The API URL that lists a revision's files with their hashes.
pub fn api_revision_url(base: &str, repo: &str, revision: &str) -> String {
    let rev: String = revision
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect();
    format!(
        "{}/api/models/{repo}/revision/{rev}?blobs=true",
        base.trim_end_matches('/')
    )
}

/// What the API's revision listing says of each file (see [`Expected`]): its hash, and its
/// size where given. Files with neither a valid `lfs.sha256` nor `blobId` are left out.
pub fn expected_from_api(json: &[u8]) -> Result<BTreeMap<String, (Expected, Option<u64>)>, String> {
    let value = check_json("the hub's file list", json)?;
    let siblings = value
        .get("siblings")
        .and_then(|s| s.as_array())
        .ok_or("the hub's file list has no siblings")?;
    let mut out = BTreeMap::new();
    for s in siblings {
        let Some(name) = s.get("rfilename").and_then(|n| n.as_str()) else {
            continue;
        };
        let lfs = s.get("lfs").filter(|l| l.is_object());
        let found = match lfs {
            Some(l) => l
                .get("sha256")
                .and_then(|h| h.as_str())
                .and_then(parse_etag)
                .filter(|e| matches!(e, Expected::Sha256(_)))
                .map(|e| (e, l.get("size").and_then(|n| n.as_u64()))),
            None => s
                .get("blobId")
                .and_then(|h| h.as_str())
                .and_then(parse_etag)
                .filter(|e| matches!(e, Expected::GitSha1(_)))
                .map(|e| (e, s.get("size").and_then(|n| n.as_u64()))),
        };
        if let Some(f) = found {
            out.insert(name.to_string(), f);
        }
    }
    Ok(out)
}

/// Hashes a file as its bytes arrive, for one [`Expected`] kind. The git blob id starts
/// with the length, so it needs the whole length before the first byte.
#[derive(Clone)]
pub enum Hasher {
    Sha256(sha2::Sha256),
    GitSha1(sha1::Sha1),
}

impl Hasher {
    /// `None` for a git blob id of a file whose length is not known yet.
    pub fn new(expected: &Expected, len: Option<u64>) -> Option<Self> {
        use sha1::Digest;
        match expected {
            Expected::Sha256(_) => Some(Hasher::Sha256(sha2::Sha256::new())),
            Expected::GitSha1(_) => {
                let mut h = sha1::Sha1::new();
                h.update(format!("blob {}\0", len?).as_bytes());
                Some(Hasher::GitSha1(h))
            }
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        use sha1::Digest;
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::GitSha1(h) => h.update(bytes),
        }
    }

    /// Lowercase hex.
    pub fn finish(self) -> String {
        use sha1::Digest;
        let bytes: Vec<u8> = match self {
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::GitSha1(h) => h.finalize().to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The hash of a whole file, as `expected` reckons it.
pub fn digest(expected: &Expected, bytes: &[u8]) -> String {
    let mut h = Hasher::new(expected, Some(bytes.len() as u64)).expect("the length is known");
    h.update(bytes);
    h.finish()
}

/// First characters of a hash, for messages ("ab12cd34ef56…").
fn short(hex: &str) -> String {
    format!("{}…", &hex[..hex.len().min(16)])
}

/// Compares a file's hash (`got`, hex) with the hub's; the error is what the user reads.
pub fn check_digest(file: &str, repo: &str, expected: &Expected, got: &str) -> Result<(), String> {
    if got.eq_ignore_ascii_case(expected.hex()) {
        return Ok(());
    }
    Err(format!(
        "{file} from {repo}: checksum mismatch, expected {} {}, got {}; it was not stored (a damaged \
         or swapped file: load again to download it afresh)",
        expected.algorithm(),
        short(expected.hex()),
        short(got)
    ))
}

/// What the page says when a stored copy no longer matches the hash it was stored with.
pub fn stored_mismatch(file: &str, repo: &str, expected: &Expected, got: &str) -> String {
    format!(
        "The stored copy of {file} from {repo} was damaged (checksum mismatch, expected {} {}, got \
         {}): it was dropped and downloaded again.",
        expected.algorithm(),
        short(expected.hex()),
        short(got)
    )
}
