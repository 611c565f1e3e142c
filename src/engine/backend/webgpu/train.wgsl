// The head-training kernels (see train.rs): a strided tiled matmul (matmul and aᵀ·b),
// column sums, softmax cross-entropy (per row, then the mean), the ReLU backward and the
// AdamW update. Every entry point binds only the variables it uses, so the automatic
// layouts differ per entry point; the binding numbers are unique across the file.

// Eight words for every kernel; floats travel as their bits.
struct Params {
    w0: u32,
    w1: u32,
    w2: u32,
    w3: u32,
    w4: u32,
    w5: u32,
    w6: u32,
    w7: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read> c: array<f32>;
@group(0) @binding(3) var<storage, read> d: array<f32>;
@group(0) @binding(4) var<storage, read> labels: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read_write> out2: array<f32>;
@group(0) @binding(7) var<storage, read_write> out3: array<f32>;
@group(0) @binding(8) var<uniform> p: Params;

const TILE: u32 = 64u;
const TK: u32 = 16u;
// f32::MIN, written so that every WGSL compiler (Tint too) takes it as an f32.
const LOWEST: f32 = -3.4028234e38;

// ---- matmul: out[i, j] = Σ_t A(i, t) · B(t, j), A(i, t) = a[i·sai + t·sat] and
// B(t, j) = b[t·sbt + j·sbj]. Strides make a · b (sai = k, sat = 1, sbt = m, sbj = 1) and
// aᵀ · b (sai = 1, sat = k, sbt = m, sbj = 1) one kernel. The 64×64 output tile of a
// workgroup, 4×4 per thread, and the 64×16 slices in workgroup memory are those of
// matmul.wgsl; a slice is read along whichever of its dimensions is contiguous in memory.
// w0 = n (output rows), w1 = k (summed), w2 = m (output columns), w3..w6 = sai, sat, sbt, sbj.

// [row within the tile][t within the slice]
var<workgroup> ta: array<f32, 1024>;
// [output column within the tile][t within the slice]
var<workgroup> tb: array<f32, 1024>;

@compute @workgroup_size(16, 16)
fn matmul(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let n = p.w0;
    let k = p.w1;
    let m = p.w2;
    let sai = p.w3;
    let sat = p.w4;
    let sbt = p.w5;
    let sbj = p.w6;
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    var acc: array<f32, 16>;
    let slices = (k + TK - 1u) / TK;
    for (var s = 0u; s < slices; s++) {
        let t0 = s * TK;
        for (var q = 0u; q < 4u; q++) {
            let idx = li + q * 256u;
            // Consecutive threads read consecutive addresses where the layout allows.
            var r = idx / TK;
            var tt = idx % TK;
            if (sai == 1u) {
                r = idx % TILE;
                tt = idx / TILE;
            }
            var av = 0.0;
            if (row0 + r < n && t0 + tt < k) {
                av = a[(row0 + r) * sai + (t0 + tt) * sat];
            }
            ta[r * TK + tt] = av;
            var cj = idx / TK;
            var ct = idx % TK;
            if (sbj == 1u) {
                cj = idx % TILE;
                ct = idx / TILE;
            }
            var bv = 0.0;
            if (col0 + cj < m && t0 + ct < k) {
                bv = b[(t0 + ct) * sbt + (col0 + cj) * sbj];
            }
            tb[cj * TK + ct] = bv;
        }
        workgroupBarrier();
        for (var tt = 0u; tt < TK; tt++) {
            var x: array<f32, 4>;
            var y: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                x[i] = ta[(lid.y * 4u + i) * TK + tt];
                y[i] = tb[(lid.x * 4u + i) * TK + tt];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i * 4u + j] = fma(x[i], y[j], acc[i * 4u + j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let r = row0 + lid.y * 4u + i;
        for (var j = 0u; j < 4u; j++) {
            let cc = col0 + lid.x * 4u + j;
            if (r < n && cc < m) {
                out[r * m + cc] = acc[i * 4u + j];
            }
        }
    }
}

// ---- sum_rows: out[j] = Σ_i a[i, j]. A workgroup takes 16 columns; its 16 lanes per column
// stride over the rows and meet in workgroup memory. w0 = n, w1 = m.

var<workgroup> red16: array<f32, 256>;

@compute @workgroup_size(16, 16)
fn sum_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let n = p.w0;
    let m = p.w1;
    let col = (wid.y * nwg.x + wid.x) * 16u + lid.x;
    var s = 0.0;
    if (col < m) {
        for (var i = lid.y; i < n; i += 16u) {
            s += a[i * m + col];
        }
    }
    red16[lid.y * 16u + lid.x] = s;
    workgroupBarrier();
    for (var stride = 8u; stride > 0u; stride = stride / 2u) {
        if (lid.y < stride) {
            red16[lid.y * 16u + lid.x] += red16[(lid.y + stride) * 16u + lid.x];
        }
        workgroupBarrier();
    }
    if (lid.y == 0u && col < m) {
        out[col] = red16[lid.x];
    }
}

// ---- xent_rows: one workgroup per row of logits a [n, c]. Writes the gradient
// out[i, j] = (softmax_j − [j = label]) / n and the row's loss out2[i] = log Σ exp − shifted
// logit of the label. w0 = n, w1 = c.

var<workgroup> red64: array<f32, 64>;

fn reduce64(lid: u32, is_max: bool) -> f32 {
    for (var stride = 32u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            if (is_max) {
                red64[lid] = max(red64[lid], red64[lid + stride]);
            } else {
                red64[lid] += red64[lid + stride];
            }
        }
        workgroupBarrier();
    }
    let v = red64[0];
    workgroupBarrier();
    return v;
}

@compute @workgroup_size(64)
fn xent_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let n = p.w0;
    let cls = p.w1;
    let row = wid.y * nwg.x + wid.x;
    if (row >= n) {
        return;
    }
    let off = row * cls;
    var mx = LOWEST;
    for (var j = lid; j < cls; j += 64u) {
        mx = max(mx, a[off + j]);
    }
    red64[lid] = mx;
    workgroupBarrier();
    mx = reduce64(lid, true);
    var s = 0.0;
    for (var j = lid; j < cls; j += 64u) {
        s += exp(a[off + j] - mx);
    }
    red64[lid] = s;
    workgroupBarrier();
    let total = reduce64(lid, false);
    let label = labels[row];
    let fn_ = f32(n);
    for (var j = lid; j < cls; j += 64u) {
        let prob = exp(a[off + j] - mx) / total;
        out[off + j] = (prob - select(0.0, 1.0, j == label)) / fn_;
    }
    if (lid == 0u) {
        out2[row] = log(total) - (a[off + label] - mx);
    }
}

// ---- xent_mean: out[0] = mean of the n row losses in a. One workgroup. w0 = n.

var<workgroup> red256: array<f32, 256>;

@compute @workgroup_size(256)
fn xent_mean(@builtin(local_invocation_index) lid: u32) {
    let n = p.w0;
    var s = 0.0;
    for (var i = lid; i < n; i += 256u) {
        s += a[i];
    }
    red256[lid] = s;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            red256[lid] += red256[lid + stride];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        out[0] = red256[0] / f32(n);
    }
}

fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid.x;
}

// ---- relu_backward: out = a (dy) where b (the ReLU output y) > 0, else 0. w0 = length.

@compute @workgroup_size(256)
fn relu_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = flat_index(wid, nwg, lid);
    if (i >= p.w0) {
        return;
    }
    out[i] = select(0.0, a[i], b[i] > 0.0);
}

// ---- adamw: param a, gradient b, moments c (m) and d (v) → out, out2, out3 (param, m, v),
// in the order of PyTorch's single-tensor AdamW (AdamWStep::apply in train_ops.rs).
// w0 = length; w1..w7 (f32 bits) = decay, 1 − β1, β2, 1 − β2, √(1 − β2ᵗ), eps, −lr / (1 − β1ᵗ).

@compute @workgroup_size(256)
fn adamw(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = flat_index(wid, nwg, lid);
    if (i >= p.w0) {
        return;
    }
    let decay = bitcast<f32>(p.w1);
    let one_minus_b1 = bitcast<f32>(p.w2);
    let b2 = bitcast<f32>(p.w3);
    let one_minus_b2 = bitcast<f32>(p.w4);
    let bc2_sqrt = bitcast<f32>(p.w5);
    let eps = bitcast<f32>(p.w6);
    let neg_step = bitcast<f32>(p.w7);
    let g = b[i];
    let m0 = c[i];
    let m = m0 + one_minus_b1 * (g - m0);
    let v = d[i] * b2 + one_minus_b2 * g * g;
    let denom = sqrt(v) / bc2_sqrt + eps;
    out[i] = a[i] * decay + neg_step * m / denom;
    out2[i] = m;
    out3[i] = v;
}
