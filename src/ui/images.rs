use leptos::prelude::*;

/// Image classification with ViT. Filled by the app issue once the engine runs ViT.
#[component]
pub fn ImagePanel() -> impl IntoView {
    view! {
        <section aria-labelledby="images-title">
            <h2 id="images-title">"Classify images"</h2>
            <p class="todo">
                "Not built yet: image classification with a ViT and its attention over the picture "
                "arrives with the engine. Nothing here runs a model today."
            </p>
        </section>
    }
}
