// Element type of the paged KV cache, read and written four elements (one "chunk") at a time:
// KV_F16: uvec2 of two packHalf2x16 words (no 16-bit storage feature needed); else vec4.  The fused Q/K/V
// store writes two elements (a "pair") at a time: one packHalf2x16 word, or a vec2.
#ifndef VKLLM_KV_CACHE_GLSL
#define VKLLM_KV_CACHE_GLSL

#ifdef KV_F16
#define KV_CHUNK uvec2
vec4 kv_unpack(uvec2 c) { return vec4(unpackHalf2x16(c.x), unpackHalf2x16(c.y)); }
uvec2 kv_pack(vec4 v) { return uvec2(packHalf2x16(v.xy), packHalf2x16(v.zw)); }
#define KV_PAIR uint
uint kv_pack_pair(vec2 v) { return packHalf2x16(v); }
#else
#define KV_CHUNK vec4
vec4 kv_unpack(vec4 c) { return c; }
vec4 kv_pack(vec4 v) { return v; }
#define KV_PAIR vec2
vec2 kv_pack_pair(vec2 v) { return v; }
#endif

#endif
