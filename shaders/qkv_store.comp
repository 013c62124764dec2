#version 450
// The Q/K/V store after a tiled mat-mul (or separate mat-vecs) wrote the stacked projection of n tokens:
// one invocation per pair of rows of qkv [n][q_rows + 2 kv_rows]; see qkv_store.glsl.
#include "common.glsl"
#define QKV_BINDING 1
#include "qkv_store.glsl"
layout(std430, binding = 0) readonly buffer QKV { vec2 qkv[]; };

layout(push_constant) uniform Push {
    uint n_pairs; // n * (q_rows + 2 kv_rows) / 2
    QkvParams qkv;
} p;

void main()
{
    const uint i = linear_invocation();
    if (i >= p.n_pairs) return;
    const uint pairs_per_token = (p.qkv.q_rows + 2u * p.qkv.kv_rows) / 2u;
    const vec2 v = qkv[i];
    qkv_store_pair(p.qkv, i / pairs_per_token, 2u * (i % pairs_per_token), v.x, v.y);
}
