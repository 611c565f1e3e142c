// linear: out [n, m] = act(x [n, k] · wᵀ + bias [m]) (w is [m, k], as checkpoints store
// it; act is none or GELU, fused here so the FFN's up-projection is one dispatch).
// One workgroup computes a 64×64 tile of the output, each of its 16×16 threads a 4×4 block;
// the inputs pass through workgroup memory in 64×16 slices of x and w. Any n, k, m: the
// loads past the edges read zeros and the stores past the edges are skipped.
// When k is a multiple of 4, `matmul_vec4.wgsl` does the same with vec4 loads.

struct Params {
    n: u32,
    k: u32,
    m: u32,
    has_bias: u32,
    act: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const TILE: u32 = 64u;
const TK: u32 = 16u;

// [row within the tile][k within the slice]
var<workgroup> xs: array<f32, 1024>;
// [output column within the tile][k within the slice]
var<workgroup> ws: array<f32, 1024>;

@compute @workgroup_size(16, 16)
fn linear(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    var acc: array<f32, 16>;
    let slices = (p.k + TK - 1u) / TK;
    for (var t = 0u; t < slices; t++) {
        let k0 = t * TK;
        for (var s = 0u; s < 4u; s++) {
            let idx = li + s * 256u;
            let r = idx / TK;
            let gk = k0 + idx % TK;
            var xv = 0.0;
            if (row0 + r < p.n && gk < p.k) {
                xv = x[(row0 + r) * p.k + gk];
            }
            xs[idx] = xv;
            var wv = 0.0;
            if (col0 + r < p.m && gk < p.k) {
                wv = w[(col0 + r) * p.k + gk];
            }
            ws[idx] = wv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            var a: array<f32, 4>;
            var b: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                a[i] = xs[(lid.y * 4u + i) * TK + kk];
                b[i] = ws[(lid.x * 4u + i) * TK + kk];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i * 4u + j] = fma(a[i], b[j], acc[i * 4u + j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let r = row0 + lid.y * 4u + i;
        for (var j = 0u; j < 4u; j++) {
            let c = col0 + lid.x * 4u + j;
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
