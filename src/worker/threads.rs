//! The threaded worker build's pool: a rayon pool whose thread 0 is this worker and
//! whose other threads are helper Web Workers that instantiate the same module on the same
//! shared memory. Each helper runs `webformer-thread.js` (next to this file; the build puts
//! it beside the worker), which hands the rayon thread it was given to
//! [`webformer_thread_run`].
//!
//! Only the kernels (`engine::backend::cpu::par`) use the pool; they call it from thread 0,
//! which works through its share while the helpers take theirs. A helper that never starts
//! costs only speed: thread 0 then runs the jobs nobody took.

use std::cell::RefCell;

use futures_channel::mpsc;
use futures_util::StreamExt;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{DedicatedWorkerGlobalScope, Event, MessageEvent, Worker, WorkerOptions};

/// The helpers' script, beside this worker's (scripts/threads-worker.sh copies it there).
const THREAD_URL: &str = "./webformer-thread.js";
/// The most threads the pool gets, this worker's included.
const MAX_THREADS: usize = 8;
/// How long the helpers may take to start before the worker goes on with those that did.
const START_TIMEOUT_MS: i32 = 20_000;

thread_local! {
    /// The helpers' handles: kept, so nothing collects a running helper.
    static HELPERS: RefCell<Vec<Worker>> = const { RefCell::new(Vec::new()) };
}

type Started = mpsc::UnboundedSender<Result<(), String>>;

/// Starts one thread per core (at most [`MAX_THREADS`]) and waits until the helpers have
/// instantiated the module. Returns how many threads run, this one included, and why fewer
/// than asked for did.
pub async fn start() -> (usize, Option<String>) {
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let threads = (scope.navigator().hardware_concurrency() as usize).clamp(1, MAX_THREADS);
    if threads < 2 {
        return (1, None);
    }
    let (started, mut heard) = mpsc::unbounded::<Result<(), String>>();
    // Not `build_global`: it blocks until every thread has started, and a helper cannot start
    // while this thread, its parent, blocks. This pool stays alive for good, and this thread
    // is its thread 0, so the kernels' rayon calls from here run in it.
    let built = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .use_current_thread()
        .spawn_handler(|thread| spawn(thread, started.clone()).map_err(std::io::Error::other))
        .build();
    match built {
        Ok(pool) => std::mem::forget(pool),
        Err(e) => return (1, Some(format!("the thread pool did not start: {e}"))),
    }
    let late = started.clone();
    let timeout = Closure::once_into_js(move || {
        let _ = late.unbounded_send(Err(format!(
            "a helper thread did not start within {} s",
            START_TIMEOUT_MS / 1000
        )));
    });
    let _ = scope
        .set_timeout_with_callback_and_timeout_and_arguments_0(timeout.unchecked_ref(), START_TIMEOUT_MS);
    drop(started);
    let mut running = 1;
    while running < threads {
        match heard.next().await {
            Some(Ok(())) => running += 1,
            Some(Err(why)) => return (running, Some(why)),
            None => break,
        }
    }
    (running, None)
}

/// Starts the helper that is to be rayon's `thread`: it gets this module, its memory and the
/// thread (boxed; the helper takes ownership), and says "ready" once instantiated.
fn spawn(thread: rayon::ThreadBuilder, started: Started) -> Result<(), String> {
    let options = WorkerOptions::new();
    options.set_name(&format!("webformer thread {}", thread.index()));
    let worker = Worker::new_with_options(THREAD_URL, &options)
        .map_err(|e| format!("could not start a helper thread: {e:?}"))?;
    let ok = started.clone();
    let onmessage = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
        let said = ev.data().as_string().unwrap_or_default();
        let _ = ok.unbounded_send(if said == "ready" { Ok(()) } else { Err(said) });
    });
    let onerror = Closure::<dyn FnMut(Event)>::new(move |ev: Event| {
        let _ = started.unbounded_send(Err(format!(
            "a helper thread failed: {}",
            super::error_message(&ev)
        )));
    });
    worker.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
    worker.set_onerror(Some(onerror.as_ref().unchecked_ref()));
    onmessage.forget();
    onerror.forget();
    let ptr = Box::into_raw(Box::new(thread));
    let message = js_sys::Array::of3(
        &wasm_bindgen::module(),
        &wasm_bindgen::memory(),
        &JsValue::from(ptr as usize as u32),
    );
    if let Err(e) = worker.post_message(&message) {
        // SAFETY: the helper never got the pointer, so the box is still only ours.
        drop(unsafe { Box::from_raw(ptr) });
        return Err(format!("could not message a helper thread: {e:?}"));
    }
    HELPERS.with(|h| h.borrow_mut().push(worker));
    Ok(())
}

/// Run by each helper once it has instantiated the module: it becomes its rayon thread and
/// never returns.
#[wasm_bindgen]
pub fn webformer_thread_run(ptr: u32) {
    // SAFETY: `ptr` is the box `spawn` made for this helper alone, sent to it once.
    let thread = unsafe { Box::from_raw(ptr as usize as *mut rayon::ThreadBuilder) };
    thread.run();
}
