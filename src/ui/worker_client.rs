//! The page's side of the worker protocol: `call(request).await` gives the worker's answer.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use futures_channel::oneshot;
use send_wrapper::SendWrapper;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Event, MessageEvent, Worker};

use crate::protocol::{FromWorker, Progress, Request, Response, ToWorker};

/// Trunk writes these loaders next to `index.html` for the two worker binaries: the same
/// engine, the second with fused multiply-add kernels (wasm relaxed SIMD).
const WORKER_URL: &str = "./webformer-worker_loader.js";
const RELAXED_WORKER_URL: &str = "./webformer-worker-relaxed_loader.js";
/// The relaxed worker built with threads (scripts/threads-worker.sh, not Trunk).
const THREADS_WORKER_URL: &str = "./webformer-worker-threads_loader.js";

/// A module whose one function uses `f32x4.relaxed_madd`: it validates exactly where the
/// relaxed worker would load (Chromium 114+ has relaxed SIMD); elsewhere the worker
/// containing that instruction would fail to compile, so the probe comes first.
const RELAXED_MADD_PROBE: [u8; 49] = [
    0, 97, 115, 109, 1, 0, 0, 0, // magic, version
    1, 5, 1, 96, 0, 1, 123, // type: () -> v128
    3, 2, 1, 0, // one function of that type
    10, 28, 1, 26, 0, // code: one body of 26 bytes, no locals
    67, 0, 0, 128, 63, 253, 19, // f32.const 1; f32x4.splat
    67, 0, 0, 128, 63, 253, 19, //
    67, 0, 0, 128, 63, 253, 19, //
    253, 133, 2,  // f32x4.relaxed_madd
    11, // end
];

/// Which worker build the page starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    /// SIMD128 only: every browser with wasm SIMD.
    Simd128,
    /// SIMD128 plus relaxed SIMD's fused multiply-add.
    RelaxedFma,
    /// `RelaxedFma` on one thread per core: needs shared wasm memory, which browsers allow
    /// only on cross-origin isolated pages (COOP/COEP headers, see README).
    Threads,
}

impl Kernels {
    /// Relaxed where the browser validates it, threaded too where the page is cross-origin
    /// isolated and has more than one core. `?kernels=simd128` or `?kernels=relaxed` asks
    /// for a single-thread build (benchmarks compare them in one browser).
    fn choose() -> Kernels {
        let asked = super::url_param("kernels");
        let bytes = js_sys::Uint8Array::from(&RELAXED_MADD_PROBE[..]);
        let relaxed = js_sys::WebAssembly::validate(&bytes).unwrap_or(false);
        let window = web_sys::window();
        let isolated = js_sys::Reflect::get(&js_sys::global(), &"crossOriginIsolated".into())
            .is_ok_and(|v| v.is_truthy());
        let cores = window.map_or(1.0, |w| w.navigator().hardware_concurrency());
        match asked.as_deref() {
            Some("simd128") => Kernels::Simd128,
            _ if !relaxed => Kernels::Simd128,
            Some("relaxed") => Kernels::RelaxedFma,
            _ if isolated && cores >= 2.0 => Kernels::Threads,
            _ => Kernels::RelaxedFma,
        }
    }

    fn url(self) -> &'static str {
        match self {
            Kernels::Simd128 => WORKER_URL,
            Kernels::RelaxedFma => RELAXED_WORKER_URL,
            Kernels::Threads => THREADS_WORKER_URL,
        }
    }

    /// What the status line calls the CPU path.
    pub fn describe(self) -> &'static str {
        match self {
            Kernels::Simd128 => "wasm SIMD",
            Kernels::RelaxedFma => "wasm SIMD + FMA",
            Kernels::Threads => "wasm SIMD + FMA, threads",
        }
    }

    /// `data-kernels` on the status line, for tests.
    pub fn id(self) -> &'static str {
        match self {
            Kernels::Simd128 => "simd128",
            Kernels::RelaxedFma => "relaxed",
            Kernels::Threads => "threads",
        }
    }
}

/// Cheap to clone. `SendWrapper` lets Leptos' reactive closures hold it: a worker handle
/// lives on the page's one thread anyway.
#[derive(Clone)]
pub struct WorkerClient {
    inner: SendWrapper<Rc<Inner>>,
}

struct Inner {
    worker: RefCell<Worker>,
    /// Which build runs: `Threads` falls back to `RelaxedFma` when its worker fails to start
    /// (e.g. a development build without it).
    kernels: Cell<Kernels>,
    /// What the worker says its CPU path is (its `Pong`), e.g. "wasm SIMD + FMA".
    worker_kernels: RefCell<String>,
    next_id: Cell<u64>,
    pending: RefCell<HashMap<u64, Pending>>,
    /// Who hears what the worker says on its own (id 0), e.g. a backend change.
    listeners: RefCell<Vec<Listener>>,
    /// Requests made before the worker said it is ready, sent when it does.
    ready: Cell<bool>,
    queued: RefCell<Vec<Outgoing>>,
    /// Set when the worker failed to start or crashed; every call then gets this message.
    failed: RefCell<Option<String>>,
}

impl WorkerClient {
    pub fn spawn() -> Result<Self, String> {
        let kernels = Kernels::choose();
        let worker = Worker::new(kernels.url()).map_err(|e| format!("could not start the worker: {e:?}"))?;
        let inner = Rc::new(Inner {
            worker: RefCell::new(worker),
            kernels: Cell::new(kernels),
            worker_kernels: RefCell::new(String::new()),
            next_id: Cell::new(1),
            pending: RefCell::new(HashMap::new()),
            listeners: RefCell::new(Vec::new()),
            ready: Cell::new(false),
            queued: RefCell::new(Vec::new()),
            failed: RefCell::new(None),
        });
        attach(&inner);
        Ok(Self {
            inner: SendWrapper::new(inner),
        })
    }
}

/// Listens to the worker `inner` holds now: its answers go to the waiting calls, its
/// failure fails them (or, for a threaded worker that did not start, starts the
/// single-thread one).
fn attach(inner: &Rc<Inner>) {
    let worker = inner.worker.borrow();
    let weak = Rc::downgrade(inner);
    let onmessage = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
        let Some(inner) = weak.upgrade() else { return };
        let Some(text) = ev.data().as_string() else { return };
        match FromWorker::from_json(&text) {
            Ok(FromWorker {
                id: 0,
                response: Response::Pong { kernels, .. },
            }) => {
                *inner.worker_kernels.borrow_mut() = kernels;
                inner.mark_ready()
            }
            Ok(FromWorker { id: 0, response }) => {
                for listener in inner.listeners.borrow().iter() {
                    listener(&response);
                }
                if let Response::Error { message } = response {
                    web_sys::console::error_1(&format!("worker: {message}").into());
                }
            }
            Ok(FromWorker {
                id,
                response: Response::Progress(p),
            }) => {
                if let Some(Pending {
                    on_progress: Some(f), ..
                }) = inner.pending.borrow().get(&id)
                {
                    f(p);
                }
            }
            Ok(FromWorker { id, response }) => {
                if let Some(pending) = inner.pending.borrow_mut().remove(&id) {
                    let _ = pending.tx.send(response);
                }
            }
            Err(e) => web_sys::console::error_1(&e.into()),
        }
    });
    worker.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
    onmessage.forget();

    let weak = Rc::downgrade(inner);
    let onerror = Closure::<dyn FnMut(Event)>::new(move |ev: Event| {
        let Some(inner) = weak.upgrade() else { return };
        let message = format!("the worker failed: {}", crate::worker::error_message(&ev));
        web_sys::console::error_1(&message.clone().into());
        // The threaded build may be missing or refused; the page goes on single-threaded.
        // Nothing was sent to it yet: requests wait for the Pong.
        if inner.kernels.get() == Kernels::Threads && !inner.ready.get() {
            if let Ok(fallback) = Worker::new(Kernels::RelaxedFma.url()) {
                inner.worker.borrow().terminate();
                *inner.worker.borrow_mut() = fallback;
                inner.kernels.set(Kernels::RelaxedFma);
                attach(&inner);
                return;
            }
        }
        inner.fail(message);
    });
    worker.set_onerror(Some(onerror.as_ref().unchecked_ref()));
    onerror.forget();
}

impl WorkerClient {
    /// Which worker build runs.
    pub fn kernels(&self) -> Kernels {
        self.inner.kernels.get()
    }

    /// The CPU path as the running worker names it (after it said it is ready), else as
    /// the page expects from the build it started.
    pub fn kernels_label(&self) -> String {
        let said = self.inner.worker_kernels.borrow();
        if said.is_empty() {
            self.inner.kernels.get().describe().to_string()
        } else {
            said.clone()
        }
    }

    /// Sends a request and waits for its answer. A `Response::Error` becomes `Err`.
    pub async fn call(&self, request: Request) -> Result<Response, String> {
        self.call_with_files(request, Vec::new()).await
    }

    /// Calls `f` with everything the worker says on its own (id 0), e.g. that the GPU was
    /// lost and the CPU took over.
    pub fn listen(&self, f: impl Fn(&Response) + 'static) {
        self.inner.listeners.borrow_mut().push(Box::new(f));
    }

    /// Like `call_with_files`, reporting the worker's progress on the way.
    pub async fn call_with_progress(
        &self,
        request: Request,
        files: Vec<js_sys::ArrayBuffer>,
        on_progress: impl Fn(Progress) + 'static,
    ) -> Result<Response, String> {
        self.send_call(request, files, Some(Box::new(on_progress))).await
    }

    /// Like `call`, with file contents that move to the worker (the buffers are
    /// transferred, not copied: a model's weights are never held twice).
    pub async fn call_with_files(
        &self,
        request: Request,
        files: Vec<js_sys::ArrayBuffer>,
    ) -> Result<Response, String> {
        self.send_call(request, files, None).await
    }

    async fn send_call(
        &self,
        request: Request,
        files: Vec<js_sys::ArrayBuffer>,
        on_progress: Option<Box<dyn Fn(Progress)>>,
    ) -> Result<Response, String> {
        if let Some(message) = self.inner.failed.borrow().clone() {
            return Err(message);
        }
        let id = self.inner.next_id.get();
        self.inner.next_id.set(id + 1);
        let (tx, rx) = oneshot::channel();
        self.inner
            .pending
            .borrow_mut()
            .insert(id, Pending { tx, on_progress });
        let message = Outgoing {
            json: ToWorker { id, request }.to_json(),
            files,
        };
        if self.inner.ready.get() {
            self.inner.send(&message);
        } else {
            self.inner.queued.borrow_mut().push(message);
        }
        match rx.await {
            Ok(Response::Error { message }) => Err(message),
            Ok(response) => Ok(response),
            Err(_) => Err(self
                .inner
                .failed
                .borrow()
                .clone()
                .unwrap_or_else(|| "the worker dropped the request".to_string())),
        }
    }
}

type Listener = Box<dyn Fn(&Response)>;

struct Pending {
    tx: oneshot::Sender<Response>,
    on_progress: Option<Box<dyn Fn(Progress)>>,
}

struct Outgoing {
    json: String,
    files: Vec<js_sys::ArrayBuffer>,
}

impl Inner {
    fn send(&self, message: &Outgoing) {
        let sent = if message.files.is_empty() {
            self.worker
                .borrow()
                .post_message(&JsValue::from_str(&message.json))
        } else {
            let buffers: js_sys::Array = message.files.iter().collect();
            let data = js_sys::Object::new();
            let _ = js_sys::Reflect::set(&data, &"json".into(), &JsValue::from_str(&message.json));
            let _ = js_sys::Reflect::set(&data, &"buffers".into(), &buffers);
            self.worker.borrow().post_message_with_transfer(&data, &buffers)
        };
        if let Err(e) = sent {
            self.fail(format!("could not message the worker: {e:?}"));
        }
    }

    fn mark_ready(&self) {
        self.ready.set(true);
        for message in self.queued.borrow_mut().drain(..) {
            self.send(&message);
        }
    }

    /// Fails every waiting call (dropping its sender) and all later ones.
    fn fail(&self, message: String) {
        *self.failed.borrow_mut() = Some(message);
        self.pending.borrow_mut().clear();
    }
}
