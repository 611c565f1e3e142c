// A helper thread of the threaded engine worker (src/worker/threads.rs). It is sent the
// worker's compiled module, its shared memory and a pointer to the rayon thread it is to be;
// it instantiates the module on that memory (the module's `main` runs only on the first
// thread), says "ready", and runs the thread, which never returns.
self.onmessage = async (event) => {
  self.onmessage = null;
  const [module, memory, thread] = event.data;
  try {
    importScripts("./webformer-worker-threads.js");
    await wasm_bindgen({ module_or_path: module, memory });
  } catch (e) {
    self.postMessage(`a helper thread could not load the engine: ${e}`);
    return;
  }
  self.postMessage("ready");
  wasm_bindgen.webformer_thread_run(thread);
};
