// Element-wise ops over flat f32 arrays: GELU (erf form, from gelu.wgsl), tanh, ReLU and add.
// 256 threads per workgroup; the workgroups may be laid out in 2-D (more than 65535).

struct Params {
    len: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
// Only `add` reads a second operand.
@group(0) @binding(3) var<storage, read> b: array<f32>;

fn flat_index(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.y * nwg.x + wid.x) * 256u + lid.x;
}

// tanh without overflow for large |x| (exp of a non-positive argument only).
fn tanh_stable(x: f32) -> f32 {
    let e = exp(-2.0 * abs(x));
    let y = (1.0 - e) / (1.0 + e);
    return select(y, -y, x < 0.0);
}

@compute @workgroup_size(256)
fn gelu(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = flat_index(wid, nwg, lid);
    if (i >= p.len) {
        return;
    }
    let v = a[i];
    out[i] = gelu_erf(v);
}

@compute @workgroup_size(256)
fn tanh_op(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = flat_index(wid, nwg, lid);
    if (i >= p.len) {
        return;
    }
    out[i] = tanh_stable(a[i]);
}

@compute @workgroup_size(256)
fn relu(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = flat_index(wid, nwg, lid);
    if (i >= p.len) {
        return;
    }
    out[i] = max(a[i], 0.0);
}

@compute @workgroup_size(256)
fn add(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let i = flat_index(wid, nwg, lid);
    if (i >= p.len) {
        return;
    }
    out[i] = a[i] + b[i];
}
