//! Finds a WebGPU adapter from inside the worker (where the engine will use it).
//! Plain `js_sys::Reflect` calls keep this free of web-sys' unstable WebGPU bindings.

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::DedicatedWorkerGlobalScope;

use crate::protocol::{BackendChoice, BackendInfo, BackendKind};

fn cpu(reason: impl Into<String>) -> BackendInfo {
    BackendInfo {
        kind: BackendKind::Cpu,
        adapter: None,
        reason: Some(reason.into()),
    }
}

fn get(obj: &JsValue, key: &str) -> Option<JsValue> {
    Reflect::get(obj, &JsValue::from_str(key))
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

fn get_string(obj: &JsValue, key: &str) -> Option<String> {
    get(obj, key)
        .and_then(|v| v.as_string())
        .filter(|s| !s.is_empty())
}

pub async fn probe(choice: BackendChoice) -> BackendInfo {
    if choice == BackendChoice::Cpu {
        return cpu("chosen with ?backend=cpu");
    }
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let navigator: JsValue = scope.navigator().into();
    let Some(gpu) = get(&navigator, "gpu") else {
        return cpu("this browser has no WebGPU (navigator.gpu is missing)");
    };
    let Some(request) = get(&gpu, "requestAdapter").and_then(|f| f.dyn_into::<Function>().ok()) else {
        return cpu("navigator.gpu.requestAdapter is missing");
    };
    let promise = match request.call0(&gpu).map(|p| p.dyn_into::<Promise>()) {
        Ok(Ok(p)) => p,
        _ => return cpu("navigator.gpu.requestAdapter() did not return a promise"),
    };
    let adapter = match JsFuture::from(promise).await {
        Ok(a) if !a.is_null() && !a.is_undefined() => a,
        Ok(_) => {
            return cpu("WebGPU found no adapter (headless Chromium needs --enable-unsafe-webgpu)");
        }
        Err(e) => return cpu(format!("WebGPU adapter request failed: {e:?}")),
    };
    let info = get(&adapter, "info").unwrap_or(JsValue::UNDEFINED);
    let mut name: Vec<String> = ["vendor", "architecture", "description"]
        .iter()
        .filter_map(|k| get_string(&info, k))
        .collect();
    name.dedup();
    let mut adapter_name = if name.is_empty() {
        "unnamed adapter".to_string()
    } else {
        name.join(" ")
    };
    let fallback = get(&info, "isFallbackAdapter")
        .or_else(|| get(&adapter, "isFallbackAdapter"))
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    if fallback {
        adapter_name.push_str(" (fallback adapter)");
    }
    BackendInfo {
        kind: BackendKind::Webgpu,
        adapter: Some(adapter_name),
        reason: None,
    }
}
