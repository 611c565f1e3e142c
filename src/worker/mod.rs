//! The worker shell: receives [`ToWorker`] messages, answers with [`FromWorker`].
//! Model work happens in [`Service`]; only what needs browser APIs lives here.

mod probe;
#[cfg(feature = "threads")]
mod threads;

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use futures_channel::mpsc;
use futures_util::StreamExt;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use crate::engine::backend::webgpu::WgpuBackend;
use crate::engine::checkpoint::Bytes;
use crate::protocol::{BackendChoice, BackendInfo, BackendKind, FromWorker, Request, Response, ToWorker};
use crate::service::{Ctx, Service};

/// Installs the message handler, then tells the page it is ready: messages posted before
/// the handler exists would be lost, so the page holds them until it hears this.
///
/// Requests are handled one at a time, in the order they came: a request that arrives
/// while another runs waits in the queue (nothing is dropped, and the model is never used
/// by two requests at once).
pub fn run() {
    console_error_panic_hook::set_once();
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let (queue, mut requests) = mpsc::unbounded::<(JsValue,)>();
    let cancel = Rc::new(Cell::new(false));

    let flag = cancel.clone();
    let onmessage = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
        // A cancel cannot wait behind the work it cancels: it is answered here, at once.
        if let Some(id) = cancel_request(&ev.data()) {
            flag.set(true);
            post(id, Response::Done);
            return;
        }
        let _ = queue.unbounded_send((ev.data(),));
    });
    scope.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
    onmessage.forget();

    wasm_bindgen_futures::spawn_local(async move {
        let mut service = Service::new();
        while let Some((data,)) = requests.next().await {
            cancel.set(false);
            handle(&mut service, &data, &cancel).await;
            if let Some(info) = service.take_backend_change() {
                post(0, Response::Backend(info));
            }
        }
    });
    // The page holds its requests until the Pong, so the pool is up before any work.
    #[cfg(feature = "threads")]
    wasm_bindgen_futures::spawn_local(async {
        let (threads, why) = threads::start().await;
        if let Some(why) = why {
            web_sys::console::warn_1(&format!("running on {threads} thread(s): {why}").into());
        }
        crate::engine::backend::cpu::set_threads(threads);
        pong();
    });
    #[cfg(not(feature = "threads"))]
    pong();
}

/// Tells the page the worker is ready, and which CPU path it runs.
fn pong() {
    post(
        0,
        Response::Pong {
            version: env!("CARGO_PKG_VERSION").to_string(),
            kernels: crate::engine::backend::cpu::kernels(),
        },
    );
}

/// The id of a `CancelTraining` request, if this message is one.
fn cancel_request(data: &JsValue) -> Option<u64> {
    let text = data.as_string()?;
    if !text.contains("cancel_training") {
        return None;
    }
    let msg = ToWorker::from_json(&text).ok()?;
    matches!(msg.request, Request::CancelTraining).then_some(msg.id)
}

/// How long work may run without giving the browser its event loop back (ms). Long enough
/// that the yields cost little (a nested `setTimeout` waits at least 4 ms), short enough that
/// Cancel takes effect at once.
const YIELD_EVERY_MS: f64 = 30.0;

thread_local! {
    static LAST_YIELD: Cell<f64> = const { Cell::new(0.0) };
}

/// Lets the browser run its event loop (and deliver a cancel) before going on, when work has
/// run for [`YIELD_EVERY_MS`] since it last did; otherwise goes on at once (the training loop
/// asks after every mini-batch).
fn pause() -> Pin<Box<dyn Future<Output = ()>>> {
    let now = js_sys::Date::now();
    if now - LAST_YIELD.with(Cell::get) < YIELD_EVERY_MS {
        return Box::pin(std::future::ready(()));
    }
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        let global = js_sys::global();
        if let Ok(set_timeout) = js_sys::Reflect::get(&global, &"setTimeout".into()) {
            let set_timeout: js_sys::Function = set_timeout.unchecked_into();
            let _ = set_timeout.call2(&global, &resolve, &JsValue::from(0));
        }
    });
    Box::pin(async move {
        let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
        LAST_YIELD.with(|t| t.set(js_sys::Date::now()));
    })
}

async fn handle(service: &mut Service, data: &JsValue, cancel: &Rc<Cell<bool>>) {
    let Some((text, files)) = unpack(data) else {
        post(
            0,
            Response::Error {
                message: "the worker got a message it does not understand".into(),
            },
        );
        return;
    };
    let msg = match ToWorker::from_json(&text) {
        Ok(msg) => msg,
        Err(message) => {
            post(0, Response::Error { message });
            return;
        }
    };
    let id = msg.id;
    let response = match msg.request {
        Request::ProbeBackend { choice } => choose_backend(service, choice).await,
        request => {
            let progress = move |p| post(id, Response::Progress(p));
            let cancelled = || cancel.get();
            let ctx = Ctx {
                progress: &progress,
                cancelled: &cancelled,
                pause: &pause,
            };
            service.handle_sources(request, files, &ctx).await
        }
    };
    let mut response = response;
    if let Response::ModelLoaded(info) = &mut response {
        info.memory_bytes = Some(memory_bytes());
    }
    post(id, response);
}

/// WebGPU when the browser has an adapter and wgpu can open it, else the CPU with the
/// reason. Models loaded from now on run there.
async fn choose_backend(service: &mut Service, choice: BackendChoice) -> Response {
    let info = probe::probe(choice).await;
    if info.kind != BackendKind::Webgpu {
        return Response::Backend(info);
    }
    match WgpuBackend::new_async().await {
        Ok(gpu) => {
            service.use_gpu(gpu);
            Response::Backend(info)
        }
        Err(e) => Response::Backend(BackendInfo {
            kind: BackendKind::Cpu,
            adapter: None,
            reason: Some(format!("WebGPU is there but could not be used: {e}")),
        }),
    }
}

/// The size of this worker's wasm memory. It grows as needed and never shrinks, so after a
/// model loads it is the most memory the worker has needed so far.
fn memory_bytes() -> u64 {
    let memory: js_sys::WebAssembly::Memory = wasm_bindgen::memory().unchecked_into();
    let buffer: js_sys::ArrayBuffer = memory.buffer().unchecked_into();
    buffer.byte_length() as u64
}

/// A file that came with a message stays a JS buffer: the service reads what it needs from
/// it (a model's weights tensor by tensor) instead of copying it into the wasm memory whole.
struct JsBytes(js_sys::Uint8Array);

impl Bytes for JsBytes {
    fn len(&self) -> usize {
        self.0.length() as usize
    }
    fn read_into(&self, offset: usize, out: &mut [u8]) {
        let end = offset + out.len();
        self.0.subarray(offset as u32, end as u32).copy_to(out);
    }
    fn to_vec(&self) -> Vec<u8> {
        self.0.to_vec()
    }
}

/// A message is the request's JSON text, or `{json, buffers}` when file contents travel
/// with it (as transferred `ArrayBuffer`s, so they are not copied).
fn unpack(data: &JsValue) -> Option<(String, Vec<Box<dyn Bytes>>)> {
    if let Some(text) = data.as_string() {
        return Some((text, Vec::new()));
    }
    let json = js_sys::Reflect::get(data, &"json".into()).ok()?.as_string()?;
    let buffers: js_sys::Array = js_sys::Reflect::get(data, &"buffers".into())
        .ok()?
        .dyn_into()
        .ok()?;
    let files = buffers
        .iter()
        .map(|b| Box::new(JsBytes(js_sys::Uint8Array::new(&b))) as Box<dyn Bytes>)
        .collect();
    Some((json, files))
}

fn post(id: u64, response: Response) {
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let text = FromWorker { id, response }.to_json();
    if let Err(e) = scope.post_message(&JsValue::from_str(&text)) {
        web_sys::console::error_2(&"webformer worker: postMessage failed".into(), &e);
    }
}

/// What a Worker's `error` event says: an `ErrorEvent`'s message for an exception in the
/// worker, but a script that failed to load gives a plain `Event` without one.
pub fn error_message(ev: &web_sys::Event) -> String {
    js_sys::Reflect::get(ev, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "its script did not load".to_string())
}
