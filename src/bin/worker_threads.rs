//! The Web Worker built with the `threads` feature (and std with atomics): the relaxed-SIMD
//! engine whose kernels share out their work to helper Web Workers. The page starts it only
//! on a cross-origin isolated page (src/ui/worker_client.rs).
fn main() {
    webformer::worker::run();
}
