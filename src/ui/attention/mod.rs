//! The attention explorer for the current input, text or image. Pick a layer and a head;
//! four views of the same probabilities (`[layer][head][query][key]`, each query row sums
//! to 1):
//! - [`heatmap`]: token × token, hover for values;
//! - [`lines`]: BertViz's line view, tokens on both sides, a line per weight;
//! - [`grid`]: every layer × head at once, click one to select it;
//! - [`image`] (ViT only): the `[CLS]` token's attention over the patches, drawn on the
//!   picture, for the selected head or rolled out across all layers.

mod draw;
mod grid;
mod heatmap;
mod image;
mod lines;

use leptos::prelude::*;

/// `[layer][head][query][key]`
pub type Attentions = Vec<Vec<Vec<Vec<f32>>>>;

/// `image_url`: the picture the attentions are about (a ViT input); adds the overlay view.
#[component]
pub fn AttentionExplorer(
    tokens: Vec<String>,
    attentions: Attentions,
    #[prop(optional, into)] image_url: Option<String>,
) -> impl IntoView {
    let layers = attentions.len();
    let heads = attentions.first().map_or(0, Vec::len);
    let (layer, set_layer) = signal(layers.saturating_sub(1));
    let (head, set_head) = signal(0usize);
    let att = StoredValue::new(attentions);
    let toks = StoredValue::new(tokens);

    let select = move |testid: &'static str,
                       label: &'static str,
                       count: usize,
                       value: ReadSignal<usize>,
                       set: WriteSignal<usize>| {
        view! {
            <label>
                {label}
                <select
                    data-testid=testid
                    prop:value=move || value.get().to_string()
                    on:change=move |ev| set.set(event_target_value(&ev).parse().unwrap_or(0))
                >
                    {(0..count).map(|i| view! { <option value=i.to_string()>{(i + 1).to_string()}</option> }).collect_view()}
                </select>
            </label>
        }
    };

    view! {
        // Room below, before whatever the panel shows next.
        <div class="attention">
            <p class="hint">
                "Self-attention: every token makes a query, a key and a value. A token's query is compared "
                "with every key; a softmax turns the scores into weights (each row sums to 1), and "
                "the token's new state is the weighted mix of the values. Each head learns its own "
                "queries and keys, so heads look for different things."
            </p>
            <div class="columns">
                {select("attention-layer", "Layer ", layers, layer, set_layer)}
                {select("attention-head", "Head ", heads, head, set_head)}
            </div>
            {image_url.map(|url| view! { <image::ImageAttention url=url att=att layer=layer head=head /> })}
            <div class="attention-views">
                <section>
                    <h4>"Heatmap"</h4>
                    <p class="note">"Row: the token that looks; column: the token it looks at."</p>
                    <heatmap::Heatmap att=att toks=toks layer=layer head=head />
                </section>
                <section>
                    <h4>"Lines"</h4>
                    <p class="note">"Each line joins a token (left) to a token it attends to (right); darker is more. Point at a token on the left to see only its lines."</p>
                    <lines::Lines att=att toks=toks layer=layer head=head />
                </section>
            </div>
            <section>
                <h4>"Every layer and head"</h4>
                <p class="note">"Rows are layers (first at the top), columns heads. Early layers often look at neighbours or at the token itself; later ones at [CLS], [SEP] or related words. Click one to explore it above."</p>
                <grid::Grid att=att layer=layer head=head set_layer=set_layer set_head=set_head />
            </section>
        </div>
    }
}
