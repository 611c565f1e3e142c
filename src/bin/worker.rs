//! The Web Worker that owns the engine in the browser (built by Trunk with `data-type="worker"`).
fn main() {
    webformer::worker::run();
}
