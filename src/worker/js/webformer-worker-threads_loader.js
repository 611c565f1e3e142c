// Starts the threaded engine worker (scripts/threads-worker.sh puts this beside its glue).
// The glue creates the shared memory; the worker's `main` then starts the helper threads.
importScripts("./webformer-worker-threads.js");
wasm_bindgen({ module_or_path: "./webformer-worker-threads_bg.wasm" });
