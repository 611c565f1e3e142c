//! The page, one file per panel. State lives in signals inside the component that uses it;
//! the worker client is handed down as a prop.

mod about;
mod attention;
mod debug;
mod download;
mod finetune;
mod finetune_images;
mod images;
mod model_files;
mod models;
mod status;
mod text;
mod training;
pub mod worker_client;

use leptos::prelude::*;

use crate::protocol::{BackendChoice, HeadInfo, ModelInfo};
use worker_client::WorkerClient;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Area {
    Text,
    Images,
    FineTune,
    About,
}

impl Area {
    const ALL: [Area; 4] = [Area::Text, Area::Images, Area::FineTune, Area::About];

    fn title(self) -> &'static str {
        match self {
            Area::Text => "Classify text",
            Area::Images => "Classify images",
            Area::FineTune => "Fine-tune",
            Area::About => "About",
        }
    }

    fn id(self) -> &'static str {
        match self {
            Area::Text => "text",
            Area::Images => "images",
            Area::FineTune => "finetune",
            Area::About => "about",
        }
    }
}

/// A query parameter of the page's URL: `Some("")` for a bare flag such as `?debug`.
pub(crate) fn url_param(name: &str) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    web_sys::UrlSearchParams::new_with_str(&search).ok()?.get(name)
}

/// `?backend=cpu|webgpu` forces a backend; anything else lets the app choose.
fn backend_from_url() -> BackendChoice {
    url_param("backend")
        .and_then(|v| BackendChoice::parse(&v))
        .unwrap_or_default()
}

#[component]
pub fn App() -> impl IntoView {
    let client = WorkerClient::spawn();
    let (area, set_area) = signal(Area::Text);

    let body = match client {
        Err(message) => view! { <p class="error" role="alert" data-testid="error">{message}</p> }.into_any(),
        Ok(client) => {
            if debug::enabled() {
                debug::install(client.clone());
            }
            // Shared by the panels: the loaded model and the trained head (both live in the worker).
            let (model, set_model) = signal(None::<ModelInfo>);
            let (head, set_head) = signal(None::<HeadInfo>);
            finetune::restore_head(client.clone(), set_head);
            // Every panel stays mounted (hidden when not shown): switching tabs loses nothing.
            let shown = move |a: Area| area.get() != a;
            let panels = view! {
                <div hidden=move || shown(Area::Text)>
                    <text::TextPanel client=client.clone() model=model head=head />
                </div>
                <div hidden=move || shown(Area::Images)>
                    <images::ImagePanel client=client.clone() model=model />
                    <finetune_images::ImageFineTune client=client.clone() model=model />
                </div>
                <div hidden=move || shown(Area::FineTune)>
                    <finetune::FineTunePanel client=client.clone() model=model head=head set_head=set_head />
                </div>
                <div hidden=move || shown(Area::About)><about::AboutPanel /></div>
            };
            view! {
                <status::BackendStatus client=client.clone() choice=backend_from_url() />
                <model_files::ModelFiles client=client set_model=set_model set_head=set_head />
                <nav class="areas" role="tablist" aria-label="Tasks">
                    {Area::ALL
                        .into_iter()
                        .map(|a| {
                            view! {
                                <button
                                    role="tab"
                                    id=format!("tab-{}", a.id())
                                    data-testid=format!("tab-{}", a.id())
                                    aria-selected=move || (area.get() == a).to_string()
                                    class:active=move || area.get() == a
                                    on:click=move |_| set_area.set(a)
                                >
                                    {a.title()}
                                </button>
                            }
                        })
                        .collect_view()}
                </nav>
                <main class="panel" role="tabpanel">{panels}</main>
            }
            .into_any()
        }
    };

    view! {
        <header class="top">
            <h1>"webformer"</h1>
            <p class="tagline">"Transformers that run, explain themselves and learn — in your browser. Nothing leaves your machine."</p>
        </header>
        {body}
    }
}
