use leptos::prelude::*;

#[component]
pub fn AboutPanel() -> impl IntoView {
    view! {
        <section aria-labelledby="about-title" data-testid="about">
            <h2 id="about-title">"About webformer"</h2>
            <p>
                "webformer runs transformer models (BERT, DistilBERT, ViT) entirely in this page: the "
                "weights are downloaded once, and every computation happens on your machine, on WebGPU "
                "when the browser offers it, otherwise on the CPU with WebAssembly SIMD."
            </p>
            <p>
                "The model work runs in a Web Worker, so the page stays responsive while it computes. "
                "The engine is plain Rust, compiled to WebAssembly here and checked natively against "
                "PyTorch on the same weights."
            </p>
            <p>
                "A transformer first cuts text into tokens: pieces of words from a fixed vocabulary. "
                "The Classify text tab shows them for any text you type."
            </p>
        </section>
    }
}
