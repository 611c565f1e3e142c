use leptos::prelude::*;

#[component]
pub fn AboutPanel() -> impl IntoView {
    view! {
        <section aria-labelledby="about-title" data-testid="about">
            <h2 id="about-title">"About webformer"</h2>
            <p>
                "webformer runs transformer models (BERT, DistilBERT, MiniLM, ViT) entirely in this page: "
                "you pick one the site ships (it works offline), download one from the Hugging Face hub "
                "(kept in this browser for the next visit), or open a model's files from your disk. "
                "Every computation happens on your machine, on WebGPU when the browser offers "
                "it, otherwise on the CPU with WebAssembly SIMD. Fine-tuning trains a small head on the "
                "frozen model's embeddings, here too."
            </p>
            <p>
                "The model work runs in a Web Worker, so the page stays responsive while it computes. "
                "The engine is plain Rust, compiled to WebAssembly here and checked natively against "
                "PyTorch on the same weights."
            </p>
            <p>
                "A transformer first cuts text into tokens: pieces of words from a fixed vocabulary. "
                "The Classify text tab shows them for any text you type, and “Show attention” draws "
                "how much each token attends to every other, layer by layer and head by head."
            </p>
        </section>
    }
}
