//! Reuse of GPU buffers between ops. An encoder layer makes the same dozen intermediate
//! tensors as the layer before, so instead of creating a buffer per op (and letting wgpu
//! free it on drop), a tensor's buffer goes back to a free list when its last handle drops
//! and the next op of a similar size takes it.
//!
//! Reuse is safe without waiting for the GPU: WebGPU runs a queue's submissions in order,
//! and every op is submitted when it is recorded, so a buffer handed out again is written
//! only by work submitted after all the work that read its previous contents.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

/// Free buffers held beyond this many bytes are released to wgpu instead.
const MAX_HELD_BYTES: u64 = 256 << 20;

/// Counters for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Storage buffers created because none of the right size was free.
    pub created: u64,
    /// Requests served from the free list.
    pub reused: u64,
    /// Bytes in free buffers now.
    pub held_bytes: u64,
}

#[derive(Default)]
struct Free {
    by_size: HashMap<u64, Vec<wgpu::Buffer>>,
    stats: PoolStats,
}

#[derive(Clone, Default)]
pub(super) struct Pool(Arc<Mutex<Free>>);

/// A size class: multiples of 256 bytes, then four steps per power of two (at most 25%
/// wasted), so that sequences of nearby lengths share buffers.
fn bucket(bytes: u64) -> u64 {
    let b = bytes.max(256).next_multiple_of(256);
    if b <= 4096 {
        return b;
    }
    let step = (1u64 << (63 - b.leading_zeros())) / 4;
    b.next_multiple_of(step)
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Free> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A storage buffer of at least `bytes`, from the free list or new; never over `limit`
    /// (the device's largest binding), which `bytes` must not exceed.
    pub(super) fn get(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        bytes: u64,
        limit: u64,
    ) -> PooledBuffer {
        let size = bucket(bytes).min(limit / 256 * 256).max(bytes);
        let reused = {
            let mut free = self.lock();
            let found = free.by_size.get_mut(&size).and_then(Vec::pop);
            if found.is_some() {
                free.stats.reused += 1;
                free.stats.held_bytes -= size;
            } else {
                free.stats.created += 1;
            }
            found
        };
        // Debug builds (the tests) fill a reused buffer with NaN, so that a kernel which
        // leaves part of its output unwritten fails the tests instead of passing on old data.
        #[cfg(debug_assertions)]
        if let Some(buf) = &reused {
            let nan = vec![f32::NAN; (size / 4) as usize];
            queue.write_buffer(buf, 0, bytemuck::cast_slice(&nan));
        }
        #[cfg(not(debug_assertions))]
        let _ = queue;
        let buf = reused.unwrap_or_else(|| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("pooled"),
                size,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        PooledBuffer {
            buf: Some(buf),
            pool: Some(self.clone()),
        }
    }

    pub(super) fn stats(&self) -> PoolStats {
        self.lock().stats
    }

    fn put(&self, buf: wgpu::Buffer) {
        let size = buf.size();
        let mut free = self.lock();
        if free.stats.held_bytes + size <= MAX_HELD_BYTES {
            free.stats.held_bytes += size;
            free.by_size.entry(size).or_default().push(buf);
        }
    }
}

/// A tensor's buffer: returned to its pool on drop (weights, which live as long as the
/// model, have no pool).
pub(super) struct PooledBuffer {
    buf: Option<wgpu::Buffer>,
    pool: Option<Pool>,
}

impl PooledBuffer {
    pub(super) fn unpooled(buf: wgpu::Buffer) -> Self {
        Self {
            buf: Some(buf),
            pool: None,
        }
    }
}

impl Deref for PooledBuffer {
    type Target = wgpu::Buffer;
    fn deref(&self) -> &wgpu::Buffer {
        self.buf.as_ref().expect("a pooled buffer is only taken on drop")
    }
}

impl std::fmt::Debug for PooledBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PooledBuffer({} bytes)", self.size())
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let (Some(buf), Some(pool)) = (self.buf.take(), &self.pool) {
            pool.put(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bucket;

    #[test]
    fn buckets_round_up_by_at_most_a_quarter() {
        assert_eq!(bucket(1), 256);
        assert_eq!(bucket(4096), 4096);
        assert_eq!(bucket(4097), 5120);
        for bytes in [5000u64, 123_456, 128 * 768 * 4, 3 << 20, 77_777_777] {
            let b = bucket(bytes);
            assert!(b >= bytes && b.is_multiple_of(256), "{bytes} -> {b}");
            assert!((b - bytes) as f64 <= 0.25 * bytes as f64, "{bytes} -> {b}");
            assert_eq!(bucket(b), b, "a bucket is its own class");
        }
    }
}
