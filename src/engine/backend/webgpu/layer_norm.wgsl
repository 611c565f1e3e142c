// LayerNorm over the last dimension: one workgroup (256 threads) per row. Two passes over
// the row, the mean first and then the biased variance of the centred values, each summed
// by a tree reduction in workgroup memory.

struct Params {
    rows: u32,
    dim: u32,
    // f32 bits
    eps: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
@group(0) @binding(2) var<storage, read> beta: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

var<workgroup> red: array<f32, 256>;

fn reduce_sum(lid: u32) -> f32 {
    for (var stride = 128u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            red[lid] += red[lid + stride];
        }
        workgroupBarrier();
    }
    let total = red[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(256)
fn layer_norm(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wid.y * nwg.x + wid.x;
    if (row >= p.rows) {
        return;
    }
    let off = row * p.dim;
    let n = f32(p.dim);

    var s = 0.0;
    for (var i = lid; i < p.dim; i += 256u) {
        s += x[off + i];
    }
    red[lid] = s;
    workgroupBarrier();
    let mean = reduce_sum(lid) / n;

    var v = 0.0;
    for (var i = lid; i < p.dim; i += 256u) {
        let c = x[off + i] - mean;
        v += c * c;
    }
    red[lid] = v;
    workgroupBarrier();
    let variance = reduce_sum(lid) / n;

    let denom = sqrt(variance + bitcast<f32>(p.eps));
    for (var i = lid; i < p.dim; i += 256u) {
        out[off + i] = (x[off + i] - mean) / denom * gamma[i] + beta[i];
    }
}
