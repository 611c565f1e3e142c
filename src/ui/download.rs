//! Fetching model files: byte progress, cancel (an `AbortController`), retry with `Range`
//! resume after a network error, and the Cache API (`webformer-models`, keyed by the
//! file's URL) so the second visit needs no network.
//!
//! Hub files are checked against the hub's checksums ([`hub::Expected`] says where they
//! come from and why): hashed chunk by chunk as they arrive (a `Range` resume goes on with
//! the bytes kept, a restart starts the hash over), not stored when they do not match, and
//! stored with their checksum (`x-webformer-checksum`), which a later load checks again: a
//! stored copy that no longer matches is dropped and downloaded afresh.
//!
//! It runs on the page, not in the worker: fetch and stream reads are asynchronous, so the
//! page never blocks on them, and the worker stays free to serve the model already loaded
//! while the next one downloads. The bytes live in JS buffers (not wasm memory) and are
//! transferred to the worker once complete.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use crate::hub::{Expected, Hasher};

use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, Cache, Headers, RequestInit, Response, ResponseInit};

use crate::hub;

/// Why a file did not arrive.
#[derive(Debug)]
pub enum Failure {
    Cancelled,
    /// Cancel came after the files were in, while the worker built the model: the built
    /// model was dropped and the one loaded before stays.
    CancelledBuild,
    /// 404: the caller decides whether the file was optional.
    NotFound(String),
    /// The network failed on every attempt.
    Network(String),
    Failed(String),
}

impl Failure {
    pub fn message(self) -> String {
        match self {
            Failure::Cancelled => "the download was cancelled".into(),
            Failure::CancelledBuild => "loading was cancelled".into(),
            Failure::NotFound(m) | Failure::Network(m) | Failure::Failed(m) => m,
        }
    }
}

/// What the page shows while files arrive.
#[derive(Clone, Debug, PartialEq)]
pub struct DlProgress {
    pub file: String,
    pub done: u64,
    pub size: Option<u64>,
    pub all_done: u64,
    pub all_total: u64,
    /// E.g. "network error, retrying in 1 s (attempt 2 of 5)".
    pub note: Option<String>,
}

impl DlProgress {
    pub fn text(&self) -> String {
        let main = hub::progress_text(&self.file, self.done, self.size, self.all_done, self.all_total);
        match &self.note {
            Some(n) => format!("{main} — {n}"),
            None => main,
        }
    }
}

/// Stops a running download at once (the fetch is aborted, retries stop).
#[derive(Clone)]
pub struct CancelHandle {
    cancelled: Rc<Cell<bool>>,
    controller: AbortController,
}

impl CancelHandle {
    pub fn cancel(&self) {
        self.cancelled.set(true);
        self.controller.abort();
    }
}

/// Downloads the files of one model, keeping count of the bytes of all of them.
pub struct Downloader {
    cancelled: Rc<Cell<bool>>,
    controller: AbortController,
    cache: Option<Cache>,
    model: String,
    on_progress: Rc<dyn Fn(DlProgress)>,
    /// Bytes of the files finished so far, and of all files known so far.
    all_done: Cell<u64>,
    all_total: Cell<u64>,
    last_report: Cell<f64>,
    /// Sizes announced for files not yet fetched, so a file's real size replaces its guess.
    announced: RefCell<BTreeMap<String, u64>>,
    /// Check files against the hub's checksums (hub downloads, not the site's own files).
    verify: bool,
    /// What the hub's API listing says each file hashes to ([`Downloader::load_checksums`]).
    expected: RefCell<BTreeMap<String, Expected>>,
    /// Files used without a checksum to check them against.
    unverified: RefCell<Vec<String>>,
    /// What the user should know once loading ends (e.g. a damaged stored copy replaced).
    notes: RefCell<Vec<String>>,
}

/// A file's bytes and the checksum they were found to match, if one was known.
struct Fetched {
    bytes: Uint8Array,
    checked: Option<Expected>,
}

fn describe(e: &JsValue) -> String {
    if let Some(err) = e.dyn_ref::<js_sys::Error>() {
        return String::from(err.message());
    }
    e.as_string().unwrap_or_else(|| format!("{e:?}"))
}

async fn sleep(ms: u32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms as i32);
        }
    });
    let _ = JsFuture::from(promise).await;
}

async fn open_cache() -> Result<Cache, String> {
    let caches = web_sys::window()
        .ok_or("no window")?
        .caches()
        .map_err(|e| format!("this page cannot use the Cache API ({})", describe(&e)))?;
    JsFuture::from(caches.open(hub::CACHE_NAME))
        .await
        .map_err(|e| format!("could not open the model cache: {}", describe(&e)))?
        .dyn_into()
        .map_err(|_| "the model cache is not a Cache".to_string())
}

enum Attempt {
    /// Worth another try (connection lost, 5xx).
    Network(String),
    Http(u16),
    Cancelled,
}

impl Downloader {
    /// `cache`: keep what arrives in the Cache API (hub files); site files are not copied.
    pub async fn new(
        model: &str,
        cache: bool,
        on_progress: impl Fn(DlProgress) + 'static,
    ) -> Result<(Self, CancelHandle), String> {
        let controller = AbortController::new().map_err(|e| describe(&e))?;
        let cancelled = Rc::new(Cell::new(false));
        let verify = cache;
        let cache = if cache {
            match open_cache().await {
                Ok(c) => Some(c),
                Err(e) => {
                    web_sys::console::warn_1(&format!("downloads will not be kept: {e}").into());
                    None
                }
            }
        } else {
            None
        };
        let handle = CancelHandle {
            cancelled: cancelled.clone(),
            controller: controller.clone(),
        };
        Ok((
            Self {
                cancelled,
                controller,
                cache,
                model: model.to_string(),
                on_progress: Rc::new(on_progress),
                all_done: Cell::new(0),
                all_total: Cell::new(0),
                last_report: Cell::new(0.0),
                announced: RefCell::new(BTreeMap::new()),
                verify,
                expected: RefCell::new(BTreeMap::new()),
                unverified: RefCell::new(Vec::new()),
                notes: RefCell::new(Vec::new()),
            },
            handle,
        ))
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.get()
    }

    /// Counts a file's size into the overall total before it is fetched.
    pub fn announce(&self, file: &str, size: u64) {
        if self
            .announced
            .borrow_mut()
            .insert(file.to_string(), size)
            .is_none()
        {
            self.all_total.set(self.all_total.get() + size);
        }
    }

    fn report(&self, file: &str, done: u64, size: Option<u64>, note: Option<String>, force: bool) {
        let now = js_sys::Date::now();
        if !force && now - self.last_report.get() < 50.0 {
            return;
        }
        self.last_report.set(now);
        (self.on_progress)(DlProgress {
            file: file.to_string(),
            done,
            size,
            all_done: self.all_done.get() + done,
            all_total: self.all_total.get().max(self.all_done.get() + done),
            note,
        });
    }

    /// A file finished with `size` bytes: its announced guess (if any) is replaced.
    fn finished(&self, file: &str, size: u64) {
        let guess = self
            .announced
            .borrow_mut()
            .insert(file.to_string(), size)
            .unwrap_or(0);
        self.all_total.set(self.all_total.get() - guess + size);
        self.all_done.set(self.all_done.get() + size);
        self.report(file, size, Some(size), None, true);
    }

    /// Asks the hub's API what each file of `repo@revision` hashes to (see
    /// [`hub::Expected`]). A hub or mirror without the API, or an answer that cannot be
    /// read, only leaves the headers to go by: never an error.
    pub async fn load_checksums(&self, api_url: &str) -> Result<(), Failure> {
        let init = RequestInit::new();
        init.set_signal(Some(&self.controller.signal()));
        let window = web_sys::window().ok_or_else(|| Failure::Failed("no window".into()))?;
        let response: Response = match JsFuture::from(window.fetch_with_str_and_init(api_url, &init)).await {
            Ok(r) => r.unchecked_into(),
            Err(_) if self.is_cancelled() => return Err(Failure::Cancelled),
            Err(e) => {
                web_sys::console::warn_1(&format!("no file list from {api_url}: {}", describe(&e)).into());
                return Ok(());
            }
        };
        if !response.ok() {
            web_sys::console::warn_1(
                &format!("no file list from {api_url} (HTTP {})", response.status()).into(),
            );
            return Ok(());
        }
        let bytes = match response.array_buffer() {
            Ok(p) => match JsFuture::from(p).await {
                Ok(b) => Uint8Array::new(&b).to_vec(),
                Err(_) if self.is_cancelled() => return Err(Failure::Cancelled),
                Err(_) => return Ok(()),
            },
            Err(_) => return Ok(()),
        };
        match hub::expected_from_api(&bytes) {
            Ok(listed) => {
                let mut expected = self.expected.borrow_mut();
                for (name, (e, _size)) in listed {
                    expected.insert(name, e);
                }
            }
            Err(e) => web_sys::console::warn_1(&format!("{api_url}: {e}").into()),
        }
        Ok(())
    }

    /// Files used without a checksum to check them against (none given by the hub).
    pub fn unverified(&self) -> Vec<String> {
        self.unverified.borrow().clone()
    }

    /// What the user should read once loading ends.
    pub fn notes(&self) -> Vec<String> {
        self.notes.borrow().clone()
    }

    fn unchecked(&self, file: &str) {
        if self.verify {
            let mut u = self.unverified.borrow_mut();
            if !u.iter().any(|f| f == file) {
                u.push(file.to_string());
            }
        }
    }

    /// The stored copy of `url`, if this model's files are kept and it is there. A copy
    /// that no longer matches the checksum it was stored with (or the hub's) is dropped:
    /// `None`, and the caller downloads it again.
    pub async fn cached(&self, file: &str, url: &str) -> Option<Uint8Array> {
        let cache = self.cache.as_ref()?;
        let found = JsFuture::from(cache.match_with_str(url)).await.ok()?;
        let response: Response = found.dyn_into().ok()?;
        let stored = response
            .headers()
            .get("x-webformer-checksum")
            .ok()
            .flatten()
            .and_then(|h| Expected::from_header(&h));
        let buffer = JsFuture::from(response.array_buffer().ok()?).await.ok()?;
        let bytes = Uint8Array::new(&buffer);
        let had_checksum = stored.is_some();
        let expected = stored.or_else(|| self.expected.borrow().get(file).cloned());
        match expected {
            Some(e) => {
                let got = hash_stored(&e, &bytes).await;
                if let Err(why) = hub::check_digest(file, &self.model, &e, &got) {
                    web_sys::console::warn_1(&why.into());
                    let _ = JsFuture::from(cache.delete_with_str(url)).await;
                    self.notes
                        .borrow_mut()
                        .push(hub::stored_mismatch(file, &self.model, &e, &got));
                    return None;
                }
                // Stored unverified (a mirror, or before checksums), now checked: keep the
                // checksum with it, so that later loads check it offline too.
                if !had_checksum {
                    self.store(file, url, &bytes, Some(&e)).await;
                }
            }
            None => self.unchecked(file),
        }
        self.finished(file, bytes.length() as u64);
        Some(bytes)
    }

    /// The size a `HEAD` reports, to show an overall percentage before the big files come.
    pub async fn head_size(&self, file: &str, url: &str) -> Result<Option<u64>, Failure> {
        let init = RequestInit::new();
        init.set_method("HEAD");
        init.set_signal(Some(&self.controller.signal()));
        let window = web_sys::window().ok_or_else(|| Failure::Failed("no window".into()))?;
        let response: Response = match JsFuture::from(window.fetch_with_str_and_init(url, &init)).await {
            Ok(r) => r.unchecked_into(),
            Err(_) if self.is_cancelled() => return Err(Failure::Cancelled),
            // The GET will say what is wrong, after its retries.
            Err(_) => return Ok(None),
        };
        match response.status() {
            404 => Err(Failure::NotFound(hub::status_message(file, url, 404))),
            200..=299 => Ok(response
                .headers()
                .get("content-length")
                .ok()
                .flatten()
                .and_then(|v| v.parse().ok())),
            _ => Ok(None),
        }
    }

    /// The file's bytes: from the cache, or downloaded (with retries) and then stored.
    /// A file that does not match the hub's checksum is refused, and not stored.
    pub async fn get(&self, file: &str, url: &str) -> Result<Uint8Array, Failure> {
        if let Some(bytes) = self.cached(file, url).await {
            return Ok(bytes);
        }
        let Fetched { bytes, checked } = self.download(file, url).await?;
        if checked.is_none() {
            self.unchecked(file);
        }
        self.store(file, url, &bytes, checked.as_ref()).await;
        self.finished(file, bytes.length() as u64);
        Ok(bytes)
    }

    async fn store(&self, file: &str, url: &str, bytes: &Uint8Array, checked: Option<&Expected>) {
        let Some(cache) = &self.cache else { return };
        let headers = Headers::new().expect("Headers::new");
        let _ = headers.set("content-type", "application/octet-stream");
        let _ = headers.set("x-webformer-model", &self.model);
        let _ = headers.set("x-webformer-file", file);
        let _ = headers.set("x-webformer-size", &bytes.length().to_string());
        if let Some(e) = checked {
            let _ = headers.set("x-webformer-checksum", &e.to_header());
        }
        let init = ResponseInit::new();
        init.set_status(200);
        init.set_headers_headers(&headers);
        // The Response copies the bytes, so the buffer can still move to the worker.
        let stored = Response::new_with_opt_buffer_source_and_init(Some(bytes), &init)
            .map(|r| cache.put_with_str(url, &r));
        let result = match stored {
            Ok(p) => JsFuture::from(p).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            // A full quota costs the next visit a download, not this load.
            web_sys::console::warn_1(
                &format!("{file} was not kept for the next visit: {}", describe(&e)).into(),
            );
        }
    }

    /// Fetches `url`, resuming with `Range: bytes=N-` after a network error, up to
    /// [`hub::RETRIES`] more times with growing waits; a server that ignores `Range`
    /// (200 instead of 206) sends the file again from the start.
    ///
    /// The bytes are hashed as they arrive when a checksum is known (from the API before,
    /// or from the first answer's headers); a mismatch fails the download.
    async fn download(&self, file: &str, url: &str) -> Result<Fetched, Failure> {
        let mut state = Partial {
            chunks: Vec::new(),
            have: 0,
            size: None,
            expected: if self.verify {
                self.expected.borrow().get(file).cloned()
            } else {
                None
            },
            hasher: None,
        };
        let mut attempt = 0u32;
        loop {
            if self.is_cancelled() {
                return Err(Failure::Cancelled);
            }
            let outcome = self.attempt(file, url, &mut state).await;
            let why = match outcome {
                Ok(()) => break,
                Err(Attempt::Cancelled) => return Err(Failure::Cancelled),
                Err(Attempt::Http(404)) => {
                    return Err(Failure::NotFound(hub::status_message(file, url, 404)))
                }
                Err(Attempt::Http(s)) if s >= 500 || s == 408 => format!("HTTP {s}"),
                Err(Attempt::Http(s)) => return Err(Failure::Failed(hub::status_message(file, url, s))),
                Err(Attempt::Network(m)) => m,
            };
            attempt += 1;
            if attempt > hub::RETRIES {
                return Err(Failure::Network(format!(
                    "{file}: the download failed {} times ({why}); {} of {} MB had arrived. Check \
                     the connection and load again: files already complete are kept",
                    attempt,
                    hub::mb(state.have),
                    state.size.map(hub::mb).unwrap_or_else(|| "?".into())
                )));
            }
            let wait = hub::backoff_ms(attempt);
            let have = state.have;
            let note = format!(
                "{why}; retrying in {:.1} s (attempt {} of {}), resuming at byte {have}",
                wait as f64 / 1000.0,
                attempt + 1,
                hub::RETRIES + 1
            );
            web_sys::console::warn_1(&format!("{file}: {note}").into());
            self.report(file, have, state.size, Some(note), true);
            sleep(wait).await;
        }
        let Partial {
            chunks,
            have,
            expected,
            hasher,
            ..
        } = state;
        let checked = match expected {
            None => None,
            Some(e) => {
                let got = match hasher {
                    Some(h) => h.finish(),
                    // A git blob id whose length was not known when the bytes came.
                    None => {
                        let mut h = Hasher::new(&e, Some(have)).expect("the length is known");
                        for c in &chunks {
                            h.update(&c.to_vec());
                        }
                        h.finish()
                    }
                };
                hub::check_digest(file, &self.model, &e, &got).map_err(Failure::Failed)?;
                Some(e)
            }
        };
        let out = Uint8Array::new_with_length(have as u32);
        let mut offset = 0u32;
        for c in &chunks {
            out.set(c, offset);
            offset += c.length();
        }
        Ok(Fetched { bytes: out, checked })
    }

    async fn attempt(&self, file: &str, url: &str, state: &mut Partial) -> Result<(), Attempt> {
        let Partial {
            chunks,
            have,
            size,
            expected,
            hasher,
        } = state;
        let net = |e: JsValue| {
            if self.is_cancelled() {
                Attempt::Cancelled
            } else {
                Attempt::Network(describe(&e))
            }
        };
        let init = RequestInit::new();
        init.set_signal(Some(&self.controller.signal()));
        if *have > 0 {
            let headers = Headers::new().map_err(net)?;
            headers.set("range", &format!("bytes={have}-")).map_err(net)?;
            init.set_headers_headers(&headers);
        }
        let window = web_sys::window().ok_or_else(|| Attempt::Network("no window".into()))?;
        let response: Response = JsFuture::from(window.fetch_with_str_and_init(url, &init))
            .await
            .map_err(net)?
            .unchecked_into();
        let status = response.status();
        if status == 416 && *have > 0 {
            // The range no longer fits (the file changed?): start over.
            chunks.clear();
            *have = 0;
            return Err(Attempt::Network("the server rejected the resume range".into()));
        }
        if !(200..300).contains(&status) {
            return Err(Attempt::Http(status));
        }
        let header = |n: &str| response.headers().get(n).ok().flatten();
        let length: Option<u64> = header("content-length").and_then(|v| v.parse().ok());
        let range = header("content-range");
        if self.verify && expected.is_none() {
            *expected = hub::expected_from_headers(
                header("x-linked-etag").as_deref(),
                header("etag").as_deref(),
                response.redirected(),
            );
        }
        match hub::resume_kind(*have, status, range.as_deref()) {
            hub::Resume::Append => {
                *size = range
                    .as_deref()
                    .and_then(hub::parse_content_range)
                    .and_then(|(_, t)| t)
                    .or(length.map(|l| l + *have));
            }
            hub::Resume::Restart => {
                if *have > 0 {
                    web_sys::console::warn_1(
                        &format!("{file}: the server does not resume (HTTP {status}); starting over").into(),
                    );
                }
                chunks.clear();
                *have = 0;
                *size = length;
                // The hash starts over with the bytes.
                *hasher = expected.as_ref().and_then(|e| Hasher::new(e, *size));
            }
        }
        let body = response
            .body()
            .ok_or_else(|| Attempt::Network("the answer has no body".into()))?;
        let reader: web_sys::ReadableStreamDefaultReader = body.get_reader().unchecked_into();
        loop {
            let step = JsFuture::from(reader.read()).await.map_err(net)?;
            let done = Reflect::get(&step, &"done".into())
                .ok()
                .and_then(|v| v.as_bool())
                .unwrap_or(true);
            if done {
                break;
            }
            let chunk: Uint8Array = Reflect::get(&step, &"value".into())
                .map_err(net)?
                .unchecked_into();
            let first = chunks.is_empty();
            *have += chunk.length() as u64;
            if let Some(h) = hasher.as_mut() {
                h.update(&chunk.to_vec());
            }
            chunks.push(chunk);
            // The first bytes always show; later ones at most every 50 ms.
            self.report(file, *have, *size, None, first);
        }
        // Short of what the server announced: the connection dropped without an error.
        if let Some(s) = *size {
            if *have < s {
                return Err(Attempt::Network(format!(
                    "the connection closed after {have} of {s} bytes"
                )));
            }
        }
        Ok(())
    }
}

/// A download under way, kept across attempts: the bytes so far and their running hash.
struct Partial {
    chunks: Vec<Uint8Array>,
    have: u64,
    size: Option<u64>,
    expected: Option<Expected>,
    /// `None` while nothing is checked, or for a git blob id whose length was unknown
    /// (hashed at the end then).
    hasher: Option<Hasher>,
}

/// Hashes a stored file in slices (never a second copy of it in wasm memory), letting the
/// page breathe between large ones.
async fn hash_stored(expected: &Expected, bytes: &Uint8Array) -> String {
    const SLICE: u32 = 4 << 20;
    let len = bytes.length();
    let mut h = Hasher::new(expected, Some(len as u64)).expect("the length is known");
    let mut at = 0u32;
    while at < len {
        let end = (at + SLICE).min(len);
        h.update(&bytes.subarray(at, end).to_vec());
        at = end;
        if at < len && at.is_multiple_of(8 * SLICE) {
            sleep(0).await;
        }
    }
    h.finish()
}

/// A model kept in the Cache API, as the "stored models" list shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredModel {
    pub model: String,
    pub bytes: u64,
    pub files: usize,
}

/// Every model with files in the cache, by name, with its size.
pub async fn stored_models() -> Result<Vec<StoredModel>, String> {
    let cache = open_cache().await?;
    let keys: js_sys::Array = JsFuture::from(cache.keys())
        .await
        .map_err(|e| describe(&e))?
        .unchecked_into();
    let mut by_model: BTreeMap<String, StoredModel> = BTreeMap::new();
    for key in keys.iter() {
        let request: web_sys::Request = key.unchecked_into();
        let Ok(found) = JsFuture::from(cache.match_with_request(&request)).await else {
            continue;
        };
        let Ok(response) = found.dyn_into::<Response>() else {
            continue;
        };
        let get = |n: &str| response.headers().get(n).ok().flatten();
        let model = get("x-webformer-model").unwrap_or_else(|| request.url());
        let bytes: u64 = get("x-webformer-size").and_then(|s| s.parse().ok()).unwrap_or(0);
        let entry = by_model.entry(model.clone()).or_insert(StoredModel {
            model,
            bytes: 0,
            files: 0,
        });
        entry.bytes += bytes;
        entry.files += 1;
    }
    Ok(by_model.into_values().collect())
}

/// Deletes a model's files from the cache; returns how many went.
pub async fn delete_model(model: &str) -> Result<usize, String> {
    let cache = open_cache().await?;
    let keys: js_sys::Array = JsFuture::from(cache.keys())
        .await
        .map_err(|e| describe(&e))?
        .unchecked_into();
    let mut deleted = 0;
    for key in keys.iter() {
        let request: web_sys::Request = key.unchecked_into();
        let Ok(found) = JsFuture::from(cache.match_with_request(&request)).await else {
            continue;
        };
        let Ok(response) = found.dyn_into::<Response>() else {
            continue;
        };
        let owner = response.headers().get("x-webformer-model").ok().flatten();
        if owner.as_deref() == Some(model) {
            JsFuture::from(cache.delete_with_request(&request))
                .await
                .map_err(|e| format!("could not delete {}: {}", request.url(), describe(&e)))?;
            deleted += 1;
        }
    }
    Ok(deleted)
}
