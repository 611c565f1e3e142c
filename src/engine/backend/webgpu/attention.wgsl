// Scaled dot-product attention over [batch × seq, heads × head_dim] projections.
//
// `scores`: one workgroup (256 threads) per (batch, head, query) row writes the row's
// softmax probabilities into probs [batch, heads, seq, seq]: q·k × scale for real keys,
// max-subtracted exponentials, divided by their sum; masked keys get exactly 0.
// `context`: one thread per output element, ctx[b×seq + q, h×hd + d] = Σ_j probs · v.

struct Params {
    batch: u32,
    seq: u32,
    heads: u32,
    head_dim: u32,
    // f32 bits
    scale: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> mask: array<f32>;
@group(0) @binding(3) var<storage, read_write> probs: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

// The context pass's own bindings (probs read-only there).
@group(0) @binding(5) var<storage, read> probs_in: array<f32>;
@group(0) @binding(6) var<storage, read> v: array<f32>;
@group(0) @binding(7) var<storage, read_write> ctx: array<f32>;

var<workgroup> red: array<f32, 256>;

// f32::MIN, written so that every WGSL compiler (Tint too) takes it as an f32.
const LOWEST: f32 = -3.4028234e38;

@compute @workgroup_size(256)
fn scores(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wid.y * nwg.x + wid.x;
    if (row >= p.batch * p.heads * p.seq) {
        return;
    }
    let seq = p.seq;
    let hd = p.head_dim;
    let d = p.heads * hd;
    let qi = row % seq;
    let h = (row / seq) % p.heads;
    let b = row / (seq * p.heads);
    let q_off = (b * seq + qi) * d + h * hd;
    let p_off = row * seq;
    let scale = bitcast<f32>(p.scale);

    var mx = LOWEST;
    for (var j = lid; j < seq; j += 256u) {
        if (mask[b * seq + j] > 0.5) {
            let k_off = (b * seq + j) * d + h * hd;
            var qk = 0.0;
            for (var c = 0u; c < hd; c++) {
                qk = fma(q[q_off + c], k[k_off + c], qk);
            }
            let s = qk * scale;
            probs[p_off + j] = s;
            mx = max(mx, s);
        }
    }
    red[lid] = mx;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            red[lid] = max(red[lid], red[lid + stride]);
        }
        workgroupBarrier();
    }
    let row_max = red[0];
    workgroupBarrier();

    var sum = 0.0;
    for (var j = lid; j < seq; j += 256u) {
        var e = 0.0;
        if (mask[b * seq + j] > 0.5) {
            e = exp(probs[p_off + j] - row_max);
        }
        probs[p_off + j] = e;
        sum += e;
    }
    red[lid] = sum;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            red[lid] += red[lid + stride];
        }
        workgroupBarrier();
    }
    let total = red[0];
    for (var j = lid; j < seq; j += 256u) {
        if (total > 0.0) {
            probs[p_off + j] = probs[p_off + j] / total;
        } else {
            // Every key masked: uniform, rather than NaN.
            probs[p_off + j] = 1.0 / f32(seq);
        }
    }
}

@compute @workgroup_size(256)
fn context(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let seq = p.seq;
    let hd = p.head_dim;
    let d = p.heads * hd;
    let i = (wid.y * nwg.x + wid.x) * 256u + lid;
    if (i >= p.batch * seq * d) {
        return;
    }
    let row = i / d;
    let c = i % d;
    let h = c / hd;
    let b = row / seq;
    let qi = row % seq;
    let p_off = ((b * p.heads + h) * seq + qi) * seq;
    var acc = 0.0;
    for (var j = 0u; j < seq; j++) {
        acc = fma(probs_in[p_off + j], v[(b * seq + j) * d + c], acc);
    }
    ctx[i] = acc;
}
