use leptos::prelude::*;
use leptos::task::spawn_local;

use super::worker_client::WorkerClient;
use crate::protocol::{BackendChoice, BackendKind, Request, Response};

/// The status line: which compute backend the worker found, and why the CPU if so.
#[component]
pub fn BackendStatus(client: WorkerClient, choice: BackendChoice) -> impl IntoView {
    let (label, set_label) = signal("Looking for WebGPU…".to_string());
    let (kind, set_kind) = signal(None::<BackendKind>);
    // Which worker build runs: known for sure once the worker answered (a threaded worker
    // that failed to start was replaced by the single-thread one).
    let (kernels, set_kernels) = signal(client.kernels());
    // The CPU path as the worker names it, known once it answered (a signal, not a client
    // clone, so the listener below does not keep the client alive from inside it).
    let (cpu_name, set_cpu_name) = signal(client.kernels().describe().to_string());
    // A lost GPU: the worker moved to the CPU and says why.
    client.listen(move |r| {
        if let Response::Backend(info) = r {
            set_kind.set(Some(info.kind));
            set_label.set(info.label_with(&cpu_name.get_untracked()));
        }
    });
    let client2 = client.clone();
    spawn_local(async move {
        match client.call(Request::ProbeBackend { choice }).await {
            Ok(Response::Backend(info)) => {
                set_kind.set(Some(info.kind));
                set_kernels.set(client.kernels());
                set_cpu_name.set(client.kernels_label());
                set_label.set(info.label_with(&client.kernels_label()));
            }
            Ok(other) => set_label.set(format!("unexpected answer from the worker: {other:?}")),
            Err(message) => set_label.set(format!("Worker unavailable: {message}")),
        }
    });
    // `?debug` offers a button that destroys the GPU device, to see the CPU take over.
    let debug = super::debug::enabled();
    let (lose_note, set_lose_note) = signal(String::new());
    let lose_gpu = move |_| {
        let client = client2.clone();
        spawn_local(async move {
            match client.call(Request::SimulateGpuLoss).await {
                Ok(_) => set_lose_note.set("GPU device destroyed; the next request moves to the CPU.".into()),
                Err(m) => set_lose_note.set(m),
            }
        });
    };
    view! {
        <p class="status" role="status" aria-live="polite">
            "Compute: "
            <span
                data-testid="backend-status"
                data-kernels=move || kernels.get().id()
                data-backend=move || match kind.get() {
                    Some(BackendKind::Webgpu) => "webgpu",
                    Some(BackendKind::Cpu) => "cpu",
                    None => "pending",
                }
            >
                {label}
            </span>
            {move || {
                let lose_gpu = lose_gpu.clone();
                (debug && kind.get() == Some(BackendKind::Webgpu))
                    .then(move || {
                        view! {
                            " "
                            <button data-testid="simulate-gpu-loss" on:click=lose_gpu>
                                "Simulate GPU loss"
                            </button>
                        }
                    })
            }}
            <span class="note">{lose_note}</span>
        </p>
    }
}
