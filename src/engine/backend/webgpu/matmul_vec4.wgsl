// linear with vec4 loads, for k a multiple of 4 (every BERT/ViT projection): out [n, m] =
// act(x [n, k] · wᵀ + bias [m]), the same contract as `matmul.wgsl`'s scalar kernel.
//
// One workgroup computes a 64×64 output tile in 16-wide slices of k. Each of its 256
// threads loads one vec4 of x and one of w per slice (a quarter of the scalar kernel's load
// instructions), and computes 4×4 outputs strided by 16 (rows ly + 16i, columns lx + 16j),
// so neighbouring threads read neighbouring tile rows and write neighbouring columns.
// Tile rows are padded from 4 to 5 vec4s so those reads fall in different memory banks.

struct Params {
    n: u32,
    k: u32,
    m: u32,
    has_bias: u32,
    act: u32,
}

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const TILE: u32 = 64u;
// vec4s of k per slice (16 floats), and the padded row stride in workgroup memory.
const TK4: u32 = 4u;
const STRIDE: u32 = 5u;

// [row within the tile][k4 within the slice], rows padded to STRIDE
var<workgroup> xs: array<vec4<f32>, 320>;
// [output column within the tile][k4 within the slice], rows padded to STRIDE
var<workgroup> ws: array<vec4<f32>, 320>;

@compute @workgroup_size(16, 16)
fn linear_vec4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    let k4 = p.k / 4u;
    // This thread's load: tile row `lr`, vec4 `lk` of the slice.
    let lr = li / TK4;
    let lk = li % TK4;
    var acc: array<f32, 16>;
    let slices = (k4 + TK4 - 1u) / TK4;
    for (var t = 0u; t < slices; t++) {
        let gk = t * TK4 + lk;
        var xv = vec4<f32>(0.0);
        if (row0 + lr < p.n && gk < k4) {
            xv = x[(row0 + lr) * k4 + gk];
        }
        xs[lr * STRIDE + lk] = xv;
        var wv = vec4<f32>(0.0);
        if (col0 + lr < p.m && gk < k4) {
            wv = w[(col0 + lr) * k4 + gk];
        }
        ws[lr * STRIDE + lk] = wv;
        workgroupBarrier();
        for (var kk = 0u; kk < TK4; kk++) {
            var a: array<vec4<f32>, 4>;
            var b: array<vec4<f32>, 4>;
            for (var i = 0u; i < 4u; i++) {
                a[i] = xs[(lid.y + 16u * i) * STRIDE + kk];
                b[i] = ws[(lid.x + 16u * i) * STRIDE + kk];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i * 4u + j] += dot(a[i], b[j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let r = row0 + lid.y + 16u * i;
        for (var j = 0u; j < 4u; j++) {
            let c = col0 + lid.x + 16u * j;
            if (r < p.n && c < p.m) {
                var v = acc[i * 4u + j];
                if (p.has_bias != 0u) {
                    v += bias[c];
                }
                if (p.act == ACT_GELU) {
                    v = gelu_erf(v);
                }
                out[r * p.m + c] = v;
            }
        }
    }
}
