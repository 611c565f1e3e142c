use leptos::prelude::*;

/// Head-only fine-tuning from a dropped CSV. Filled by the fine-tuning issue.
#[component]
pub fn FineTunePanel() -> impl IntoView {
    view! {
        <section aria-labelledby="finetune-title">
            <h2 id="finetune-title">"Fine-tune"</h2>
            <p class="todo">
                "Not built yet: drop a CSV of labelled sentences and train a classification head on a "
                "frozen encoder, on WebGPU where the browser has it."
            </p>
        </section>
    }
}
