//! The Web Worker built with the `relaxed-simd` feature: the same engine with fused
//! multiply-add kernels, which the page starts only where relaxed SIMD validates.
fn main() {
    webformer::worker::run();
}
