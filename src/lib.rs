//! webformer: transformer models that run, explain themselves and learn in the browser.
//!
//! - [`engine`]: model files, tokenizer and (later) the encoder. Plain Rust with no web
//!   dependencies, so it is tested natively and runs unchanged in the browser's worker.
//! - [`hub`]: model downloads' URLs, checks and progress text (the page fetches).
//! - [`protocol`]: the typed messages between the page and the worker.
//! - [`service`]: answers protocol requests with the engine; the worker is a thin shell
//!   around it, which keeps the browser behaviour testable natively.
//! - `ui` and `worker` (feature `web`): the Leptos page and the Web Worker shell.

pub mod engine;
pub mod hub;
pub mod protocol;
pub mod service;

// The threaded worker build compiles with atomics, where JS values are not `Send` and
// Leptos' signals cannot hold them; that build is the worker alone.
#[cfg(all(feature = "web", not(feature = "threads")))]
pub mod ui;
#[cfg(feature = "web")]
pub mod worker;
