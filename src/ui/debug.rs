//! `?debug`: a handle on the worker for troubleshooting from the devtools console (and for the
//! browser tests): `await webformer.classify(["text", …])` answers with the worker's full JSON
//! result, attention maps included; `webformer.classify(texts, { attentions: false })` leaves
//! them out (at 128 tokens they nearly double the time).

use wasm_bindgen::prelude::*;

use super::worker_client::WorkerClient;
use crate::protocol::{Request, Response};

/// Whether the URL asks for the debug tools.
pub fn enabled() -> bool {
    super::url_param("debug").is_some()
}

/// The answer as JSON with the attention maps as nested arrays (on the wire they are base64,
/// see `protocol::attention_maps`), which is what a console user or a test wants to read.
fn readable(r: &Response) -> String {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let (Response::TextResults { results }, Some(out)) = (r, v["results"].as_array_mut()) {
        for (o, r) in out.iter_mut().zip(results) {
            o["attentions"] = serde_json::to_value(&r.attentions).unwrap_or_default();
        }
    }
    v.to_string()
}

/// Installs `window.webformer.classify(texts, options)`.
pub fn install(client: WorkerClient) {
    let classify = Closure::<dyn Fn(JsValue, JsValue) -> js_sys::Promise>::new(
        move |texts: JsValue, options: JsValue| {
            // Attention maps unless the options say `attentions: false`.
            let attentions = js_sys::Reflect::get(&options, &"attentions".into())
                .ok()
                .and_then(|v| v.as_bool())
                .unwrap_or(true);
            let client = client.clone();
            wasm_bindgen_futures::future_to_promise(async move {
                let texts: Vec<String> = js_sys::Array::from(&texts)
                    .iter()
                    .filter_map(|t| t.as_string())
                    .collect();
                match client.call(Request::ClassifyText { texts, attentions }).await {
                    Ok(r @ Response::TextResults { .. }) => Ok(JsValue::from_str(&readable(&r))),
                    Ok(other) => Err(JsValue::from_str(&format!("unexpected answer: {other:?}"))),
                    Err(message) => Err(JsValue::from_str(&message)),
                }
            })
        },
    );
    let api = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&api, &"classify".into(), classify.as_ref());
    classify.forget();
    if let Some(w) = web_sys::window() {
        let _ = js_sys::Reflect::set(&w, &"webformer".into(), &api);
    }
}
