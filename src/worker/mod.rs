//! The worker shell: receives [`ToWorker`] messages, answers with [`FromWorker`].
//! Model work happens in [`Service`]; only what needs browser APIs lives here.

mod probe;

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use crate::protocol::{FromWorker, Request, Response, ToWorker};
use crate::service::Service;

/// Installs the message handler, then tells the page it is ready: messages posted before
/// the handler exists would be lost, so the page holds them until it hears this.
pub fn run() {
    console_error_panic_hook::set_once();
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let service = Rc::new(RefCell::new(Service::new()));

    let onmessage = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
        let (text, files) = match unpack(&ev.data()) {
            Some(parts) => parts,
            None => {
                post(
                    0,
                    Response::Error {
                        message: "the worker got a message it does not understand".into(),
                    },
                );
                return;
            }
        };
        let msg = match ToWorker::from_json(&text) {
            Ok(msg) => msg,
            Err(message) => {
                post(0, Response::Error { message });
                return;
            }
        };
        match msg.request {
            Request::ProbeBackend { choice } => {
                wasm_bindgen_futures::spawn_local(async move {
                    post(msg.id, Response::Backend(probe::probe(choice).await));
                });
            }
            request => {
                let response = service.borrow_mut().handle_with_files(request, files);
                post(msg.id, response);
            }
        }
    });
    scope.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
    onmessage.forget();
    post(
        0,
        Response::Pong {
            version: env!("CARGO_PKG_VERSION").to_string(),
        },
    );
}

/// A message is the request's JSON text, or `{json, buffers}` when file contents travel
/// with it (as transferred `ArrayBuffer`s, so they are not copied).
fn unpack(data: &JsValue) -> Option<(String, Vec<Vec<u8>>)> {
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
        .map(|b| js_sys::Uint8Array::new(&b).to_vec())
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
