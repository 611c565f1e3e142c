//! The WebGPU backend: WGSL compute kernels dispatched through `wgpu` (Vulkan natively,
//! e.g. Mesa lavapipe; WebGPU in the browser). Every op records its kernels on the GPU and
//! leaves its result there; only [`Backend::download`] waits for the GPU and reads back.
//!
//! One kernel family per file pair: `matmul` (linear; `matmul_vec4.wgsl` is its vec4
//! variant), `elementwise` (GELU, tanh, ReLU, add), `layer_norm`, `attention`, `train`
//! (head training). `gelu.wgsl` is a snippet prepended to the sources that apply GELU. `gather_rows` and `concat_rows` are buffer copies.
//! Every compute pipeline is compiled once, in [`WgpuBackend::new`].

mod attention;
mod elementwise;
mod layer_norm;
mod matmul;
mod pool;
mod train;

pub use pool::PoolStats;
use pool::{Pool, PooledBuffer};

use std::sync::{Arc, Mutex};

use super::{AttentionShape, Backend, Result};
use crate::engine::EngineError;

/// Threads per workgroup in the 1-D kernels (must match the `.wgsl` files).
const WORKGROUP: u32 = 256;
/// The most workgroups one dispatch dimension takes (WebGPU's default limit).
const MAX_GROUPS_PER_DIM: u32 = 65_535;

fn compute_err(msg: impl Into<String>) -> EngineError {
    EngineError::Compute(msg.into())
}

/// An f32 tensor in a GPU storage buffer, row-major.
#[derive(Clone, Debug)]
pub struct WgpuTensor {
    buf: Arc<PooledBuffer>,
    shape: Vec<usize>,
}

impl WgpuTensor {
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn len(&self) -> usize {
        self.shape.iter().product()
    }
}

/// One compiled compute pipeline and its (automatically derived) bind group layout.
struct Kernel {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

impl Kernel {
    fn new(device: &wgpu::Device, module: &wgpu::ShaderModule, entry: &str) -> Self {
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: None,
            module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        });
        let layout = pipeline.get_bind_group_layout(0);
        Self { pipeline, layout }
    }
}

fn shader(device: &wgpu::Device, label: &str, source: &str) -> wgpu::ShaderModule {
    device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    })
}

struct Kernels {
    linear: Kernel,
    linear_vec4: Kernel,
    gelu: Kernel,
    tanh: Kernel,
    relu: Kernel,
    add: Kernel,
    layer_norm: Kernel,
    attn_scores: Kernel,
    attn_context: Kernel,
    // train.wgsl: head training (train.rs)
    train_matmul: Kernel,
    train_sum_rows: Kernel,
    train_xent_rows: Kernel,
    train_xent_mean: Kernel,
    train_relu_backward: Kernel,
    train_adamw: Kernel,
}

pub struct WgpuBackend {
    device: wgpu::Device,
    queue: wgpu::Queue,
    adapter: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    kernels: Kernels,
    /// Free intermediate buffers for reuse (pool.rs).
    pool: Pool,
    /// Bound where a kernel has an optional input that is absent (linear without bias).
    dummy: wgpu::Buffer,
    /// Set when the device is lost or reports an error: every result after that is suspect,
    /// so read-backs fail with this message and the caller can fall back to the CPU.
    failure: Arc<Mutex<Option<String>>>,
}

impl WgpuBackend {
    /// Picks the first adapter (`WGPU_BACKEND` / `WGPU_ADAPTER_NAME` narrow the choice),
    /// opens a device with the adapter's own limits and compiles every kernel. Native only:
    /// it blocks on the device request.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new() -> Result<Self> {
        pollster::block_on(Self::new_async())
    }

    pub async fn new_async() -> Result<Self> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| compute_err(format!("no WebGPU/Vulkan adapter found ({e})")))?;
        let info = adapter.get_info();
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("webformer"),
                required_features: wgpu::Features::empty(),
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| compute_err(format!("could not open the GPU device {} ({e})", info.name)))?;

        let failure = Arc::new(Mutex::new(None::<String>));
        let record = |failure: &Arc<Mutex<Option<String>>>, msg: String| {
            let mut f = failure.lock().unwrap_or_else(|p| p.into_inner());
            f.get_or_insert(msg);
        };
        {
            let failure = failure.clone();
            device.set_device_lost_callback(move |reason, msg| {
                let why = match reason {
                    wgpu::DeviceLostReason::Destroyed => "destroyed".to_string(),
                    wgpu::DeviceLostReason::Unknown if msg.is_empty() => "no reason given".to_string(),
                    wgpu::DeviceLostReason::Unknown => msg,
                };
                // A loss explains the errors that came before it: it wins.
                *failure.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(format!("the GPU device was lost ({why})"));
            });
        }
        {
            // Without a handler wgpu panics on the first GPU error; record it instead.
            let failure = failure.clone();
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                record(&failure, format!("the GPU reported an error: {e}"));
            }));
        }

        let with_gelu = |src: &str| format!("{}\n{src}", include_str!("gelu.wgsl"));
        let mm = shader(&device, "matmul.wgsl", &with_gelu(include_str!("matmul.wgsl")));
        let mm4 = shader(
            &device,
            "matmul_vec4.wgsl",
            &with_gelu(include_str!("matmul_vec4.wgsl")),
        );
        let ew = shader(
            &device,
            "elementwise.wgsl",
            &with_gelu(include_str!("elementwise.wgsl")),
        );
        let ln = shader(&device, "layer_norm.wgsl", include_str!("layer_norm.wgsl"));
        let at = shader(&device, "attention.wgsl", include_str!("attention.wgsl"));
        let tr = shader(&device, "train.wgsl", include_str!("train.wgsl"));
        let kernels = Kernels {
            linear: Kernel::new(&device, &mm, "linear"),
            linear_vec4: Kernel::new(&device, &mm4, "linear_vec4"),
            gelu: Kernel::new(&device, &ew, "gelu"),
            tanh: Kernel::new(&device, &ew, "tanh_op"),
            relu: Kernel::new(&device, &ew, "relu"),
            add: Kernel::new(&device, &ew, "add"),
            layer_norm: Kernel::new(&device, &ln, "layer_norm"),
            attn_scores: Kernel::new(&device, &at, "scores"),
            attn_context: Kernel::new(&device, &at, "context"),
            train_matmul: Kernel::new(&device, &tr, "matmul"),
            train_sum_rows: Kernel::new(&device, &tr, "sum_rows"),
            train_xent_rows: Kernel::new(&device, &tr, "xent_rows"),
            train_xent_mean: Kernel::new(&device, &tr, "xent_mean"),
            train_relu_backward: Kernel::new(&device, &tr, "relu_backward"),
            train_adamw: Kernel::new(&device, &tr, "adamw"),
        };
        let dummy = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("dummy"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        Ok(Self {
            device,
            queue,
            adapter: info,
            limits,
            kernels,
            pool: Pool::default(),
            dummy,
            failure,
        })
    }

    /// The adapter in use (name, driver, backend API).
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.adapter
    }

    /// Why the GPU can no longer be trusted (device lost, GPU error), if it cannot.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Destroys the device, as a driver reset would: for testing the CPU fallback.
    pub fn lose_device(&self) {
        self.device.destroy();
    }

    fn check_lost(&self) -> Result<()> {
        match self.failure() {
            Some(msg) => Err(EngineError::DeviceLost(msg)),
            None => Ok(()),
        }
    }

    /// The largest buffer a kernel can bind.
    fn max_binding(&self) -> u64 {
        self.limits
            .max_buffer_size
            .min(self.limits.max_storage_buffer_binding_size)
    }

    fn check_size(&self, elems: usize) -> Result<u64> {
        let bytes = (elems.max(1) * 4) as u64;
        let max = self.max_binding();
        if bytes > max {
            return Err(compute_err(format!(
                "a tensor of {elems} floats ({bytes} bytes) exceeds the GPU's buffer limit of {max} bytes"
            )));
        }
        Ok(bytes)
    }

    /// `linear` on the scalar-load kernel even where k allows vec4 loads: for the GEMM
    /// bench and the tests that compare the two kernels.
    pub fn linear_scalar(
        &self,
        x: &WgpuTensor,
        w: &WgpuTensor,
        b: Option<&WgpuTensor>,
    ) -> Result<WgpuTensor> {
        matmul::linear(self, x, w, b, matmul::Activation::None, false)
    }

    /// Buffer reuse so far: how many intermediate buffers were created and reused.
    pub fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// A storage tensor with undefined contents (a reused buffer holds old values; every
    /// kernel writes all of its output). Its buffer may be larger than the tensor.
    fn empty(&self, shape: &[usize]) -> Result<WgpuTensor> {
        let size = self.check_size(shape.iter().product())?;
        Ok(WgpuTensor {
            buf: Arc::new(self.pool.get(&self.device, &self.queue, size, self.max_binding())),
            shape: shape.to_vec(),
        })
    }

    fn uniform(&self, words: [u32; 8]) -> wgpu::Buffer {
        self.buffer_with(
            "params",
            bytemuck::cast_slice(&words),
            wgpu::BufferUsages::UNIFORM,
        )
    }

    /// A buffer holding `contents` (a multiple of 4 bytes). Written through the queue, not
    /// mapped at creation: that would panic on a lost device instead of reporting it.
    pub(super) fn buffer_with(
        &self,
        label: &str,
        contents: &[u8],
        usage: wgpu::BufferUsages,
    ) -> wgpu::Buffer {
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: contents.len().max(4) as u64,
            usage: usage | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        if !contents.is_empty() {
            self.queue.write_buffer(&buf, 0, contents);
        }
        buf
    }

    /// Records one dispatch of `kernel` with `bindings` (binding number, buffer) and submits it.
    fn dispatch(&self, kernel: &Kernel, bindings: &[(u32, &wgpu::Buffer)], groups: (u32, u32)) {
        let entries: Vec<wgpu::BindGroupEntry> = bindings
            .iter()
            .map(|&(binding, buf)| wgpu::BindGroupEntry {
                binding,
                resource: buf.as_entire_binding(),
            })
            .collect();
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &kernel.layout,
            entries: &entries,
        });
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            pass.set_pipeline(&kernel.pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(groups.0, groups.1, 1);
        }
        self.queue.submit([encoder.finish()]);
        // Lets wgpu free finished work without waiting for it.
        #[cfg(not(target_arch = "wasm32"))]
        let _ = self.device.poll(wgpu::PollType::Poll);
    }

    /// Copies each tensor into its own mappable buffer, all in one submission.
    fn stage(&self, ts: &[&WgpuTensor]) -> Vec<Option<wgpu::Buffer>> {
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("read-back"),
            });
        let staged = ts
            .iter()
            .map(|t| {
                let n = t.len();
                (n > 0).then(|| {
                    let size = (n * 4) as u64;
                    let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("read-back"),
                        size,
                        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    });
                    encoder.copy_buffer_to_buffer(&t.buf, 0, &staging, 0, size);
                    staging
                })
            })
            .collect();
        self.queue.submit([encoder.finish()]);
        staged
    }

    /// Copies rows between buffers in one submission: (source, source offset, destination
    /// offset, length), in floats.
    fn copy(&self, dst: &wgpu::Buffer, copies: &[(&wgpu::Buffer, usize, usize, usize)]) {
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        for &(src, from, to, len) in copies {
            if len > 0 {
                encoder.copy_buffer_to_buffer(src, (from * 4) as u64, dst, (to * 4) as u64, (len * 4) as u64);
            }
        }
        self.queue.submit([encoder.finish()]);
    }
}

/// Reads a mapped read-back buffer (None: an empty tensor) and unmaps it.
fn read_mapped(staged: &Option<wgpu::Buffer>) -> Result<Vec<f32>> {
    let Some(buf) = staged else {
        return Ok(Vec::new());
    };
    let data = {
        let view = buf
            .get_mapped_range(..)
            .map_err(|e| compute_err(format!("reading the GPU read-back failed: {e}")))?;
        bytemuck::cast_slice::<u8, f32>(&view).to_vec()
    };
    buf.unmap();
    Ok(data)
}

/// Lays `groups` workgroups out over x and y so that neither exceeds the per-dimension
/// limit; the kernels flatten `(wid.y * nwg.x + wid.x)` back and skip the excess.
fn grid(groups: usize) -> (u32, u32) {
    let groups = groups.max(1) as u32;
    let x = groups.min(MAX_GROUPS_PER_DIM);
    (x, groups.div_ceil(x))
}

fn groups_for(elems: usize) -> (u32, u32) {
    grid(elems.div_ceil(WORKGROUP as usize))
}

fn same_shape(what: &str, a: &WgpuTensor, b: &WgpuTensor) -> Result<()> {
    if a.shape != b.shape {
        return Err(compute_err(format!(
            "{what}: shapes {:?} and {:?} differ",
            a.shape, b.shape
        )));
    }
    Ok(())
}

fn dims2(what: &str, t: &WgpuTensor) -> Result<(usize, usize)> {
    match t.shape[..] {
        [r, c] => Ok((r, c)),
        _ => Err(compute_err(format!(
            "{what}: expected a 2-D tensor, got {:?}",
            t.shape
        ))),
    }
}

impl Backend for WgpuBackend {
    type Tensor = WgpuTensor;

    fn name(&self) -> String {
        format!("WebGPU ({}, {:?})", self.adapter.name, self.adapter.backend)
    }

    fn upload(&self, data: &[f32], shape: &[usize]) -> Result<WgpuTensor> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(compute_err(format!(
                "upload: {} values for shape {shape:?}",
                data.len()
            )));
        }
        self.check_size(n)?;
        let buf = self.buffer_with(
            "tensor",
            bytemuck::cast_slice(data),
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        );
        Ok(WgpuTensor {
            buf: Arc::new(PooledBuffer::unpooled(buf)),
            shape: shape.to_vec(),
        })
    }

    fn download(&self, t: &WgpuTensor) -> Result<Vec<f32>> {
        Ok(self.download_all(&[t])?.pop().unwrap_or_default())
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn download_all(&self, ts: &[&WgpuTensor]) -> Result<Vec<Vec<f32>>> {
        let staged = self.stage(ts);
        let (tx, rx) = std::sync::mpsc::channel();
        for (i, s) in staged.iter().enumerate() {
            if let Some(buf) = s {
                let tx = tx.clone();
                buf.map_async(wgpu::MapMode::Read, .., move |r| {
                    let _ = tx.send((i, r));
                });
            }
        }
        drop(tx);
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| compute_err(format!("waiting for the GPU failed: {e}")))?;
        for (_, r) in rx.iter() {
            r.map_err(|e| compute_err(format!("mapping the GPU read-back failed: {e}")))?;
        }
        self.check_lost()?;
        staged.iter().map(read_mapped).collect()
    }

    #[cfg(target_arch = "wasm32")]
    fn download_all(&self, _ts: &[&WgpuTensor]) -> Result<Vec<Vec<f32>>> {
        // The browser cannot block on a buffer mapping.
        Err(compute_err(
            "synchronous GPU read-back is not possible in the browser; use download_all_async",
        ))
    }

    async fn download_all_async(&self, ts: &[&WgpuTensor]) -> Result<Vec<Vec<f32>>> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            self.download_all(ts)
        }
        #[cfg(target_arch = "wasm32")]
        {
            // The browser resolves each mapping by itself; no polling.
            let staged = self.stage(ts);
            let mut pending = Vec::new();
            for buf in staged.iter().flatten() {
                let (tx, rx) = futures_channel::oneshot::channel();
                buf.map_async(wgpu::MapMode::Read, .., move |r| {
                    let _ = tx.send(r);
                });
                pending.push(rx);
            }
            for rx in pending {
                rx.await
                    .map_err(|_| compute_err("the GPU read-back was dropped (the device may be lost)"))?
                    .map_err(|e| compute_err(format!("mapping the GPU read-back failed: {e}")))?;
            }
            self.check_lost()?;
            staged.iter().map(read_mapped).collect()
        }
    }

    fn shape(&self, t: &WgpuTensor) -> Vec<usize> {
        t.shape.clone()
    }

    fn linear(&self, x: &WgpuTensor, w: &WgpuTensor, b: Option<&WgpuTensor>) -> Result<WgpuTensor> {
        matmul::linear(self, x, w, b, matmul::Activation::None, true)
    }

    fn linear_gelu(&self, x: &WgpuTensor, w: &WgpuTensor, b: Option<&WgpuTensor>) -> Result<WgpuTensor> {
        matmul::linear(self, x, w, b, matmul::Activation::Gelu, true)
    }

    fn gelu(&self, x: &WgpuTensor) -> Result<WgpuTensor> {
        elementwise::unary(self, &self.kernels.gelu, x)
    }

    fn tanh(&self, x: &WgpuTensor) -> Result<WgpuTensor> {
        elementwise::unary(self, &self.kernels.tanh, x)
    }

    fn relu(&self, x: &WgpuTensor) -> Result<WgpuTensor> {
        elementwise::unary(self, &self.kernels.relu, x)
    }

    fn add(&self, a: &WgpuTensor, b: &WgpuTensor) -> Result<WgpuTensor> {
        elementwise::add(self, a, b)
    }

    fn layer_norm(
        &self,
        x: &WgpuTensor,
        gamma: &WgpuTensor,
        beta: &WgpuTensor,
        eps: f64,
    ) -> Result<WgpuTensor> {
        layer_norm::layer_norm(self, x, gamma, beta, eps)
    }

    fn concat_rows(&self, parts: &[&WgpuTensor]) -> Result<WgpuTensor> {
        let Some(first) = parts.first() else {
            return Err(compute_err("concat_rows: no tensors"));
        };
        let (_, cols) = dims2("concat_rows", first)?;
        let mut rows = 0;
        for p in parts {
            let (r, c) = dims2("concat_rows", p)?;
            if c != cols {
                return Err(compute_err(format!(
                    "concat_rows: {c} columns where the first part has {cols}"
                )));
            }
            rows += r;
        }
        let out = self.empty(&[rows, cols])?;
        let mut at = 0;
        let copies: Vec<_> = parts
            .iter()
            .map(|p| {
                let len = p.len();
                let c = (&**p.buf, 0, at, len);
                at += len;
                c
            })
            .collect();
        self.copy(&out.buf, &copies);
        Ok(out)
    }

    fn gather_rows(&self, table: &WgpuTensor, ids: &[u32]) -> Result<WgpuTensor> {
        let (vocab, d) = dims2("gather_rows", table)?;
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(compute_err(format!(
                "gather_rows: id {bad} out of range for {vocab} rows"
            )));
        }
        let out = self.empty(&[ids.len(), d])?;
        let copies: Vec<_> = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| (&**table.buf, id as usize * d, i * d, d))
            .collect();
        self.copy(&out.buf, &copies);
        Ok(out)
    }

    fn attention(
        &self,
        q: &WgpuTensor,
        k: &WgpuTensor,
        v: &WgpuTensor,
        shape: AttentionShape,
        key_mask: &[f32],
        want_probs: bool,
    ) -> Result<(WgpuTensor, Option<WgpuTensor>)> {
        attention::attention(self, q, k, v, shape, key_mask, want_probs)
    }
}
