use leptos::prelude::*;
use leptos::task::spawn_local;

use super::worker_client::WorkerClient;
use crate::protocol::{BackendChoice, BackendKind, Request, Response};

/// The status line: which compute backend the worker found, and why the CPU if so.
#[component]
pub fn BackendStatus(client: WorkerClient, choice: BackendChoice) -> impl IntoView {
    let (label, set_label) = signal("Looking for WebGPU…".to_string());
    let (kind, set_kind) = signal(None::<BackendKind>);
    spawn_local(async move {
        match client.call(Request::ProbeBackend { choice }).await {
            Ok(Response::Backend(info)) => {
                set_kind.set(Some(info.kind));
                set_label.set(info.label());
            }
            Ok(other) => set_label.set(format!("unexpected answer from the worker: {other:?}")),
            Err(message) => set_label.set(format!("Worker unavailable: {message}")),
        }
    });
    view! {
        <p class="status" role="status" aria-live="polite">
            "Compute: "
            <span
                data-testid="backend-status"
                data-backend=move || match kind.get() {
                    Some(BackendKind::Webgpu) => "webgpu",
                    Some(BackendKind::Cpu) => "cpu",
                    None => "pending",
                }
            >
                {label}
            </span>
        </p>
    }
}
