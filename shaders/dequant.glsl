// Repacked weight matrices (written by src/ops/matmul/weights.c): the per-type decoding shared by the mat-vec and
// mat-mul shaders.  One TYPE_* define selects the type.
//
// A row is cut into groups of GROUP weights (8 for the float types, 32 or 64 for quantized ones); group G
// (counted over the whole bound chunk of rows: row * groups_per_row + g) keeps its quants in QV4
// consecutive uvec4s of `wq`, and its scales (and high bits) in `wa`.  A group is decoded in chunks of 8
// weights: chunk(grp, j, lo, hi, s, m) gives the levels of weights 8j..8j+3 (lo) and 8j+4..8j+7 (hi) with
// w = s * level + m.  Symmetric types return levels already centred (m = 0); HAS_MIN marks affine types, whose
// levels are unsigned.
//
// The quants are bit-shuffled at load time so that a chunk is one 32-bit word (4-bit types: byte b holds
// weights 8j+b and 8j+4+b in its nibbles) or half a word (2-bit types), which makes a chunk a few shifts
// and masks; all loads are 32-bit words or uvec4s, so no 8/16-bit storage feature is needed.
//
// INT_DOT (the mat-vec's integer path, the quantized types only) adds two functions per type:
//   levels(grp, lv): the group's levels as bytes, four per word in weight order (word i: weights 4i..4i+3),
//     each a non-negative level below 128 (the offset, if any, left to group_dot) or Q8_0's int8;
//   group_dot(grp, s, xs, dx): the group's product with x from the integer dot products s[u] of its levels
//     with x's int8 levels over each unit u of 16 weights, the sums xs[u] of x's levels over the unit, and
//     the scale dx[b] of x's block b of 32 (see q8.glsl).  Offsets and minimums are integer corrections by
//     xs: the scales multiply exact integers.
#ifndef VKLLM_DEQUANT_GLSL
#define VKLLM_DEQUANT_GLSL

// WQ(i) / WA(i): element i of wq / wa.  TEXEL_LOADS reads both through uniform texel buffers (views of
// the same bytes, RGBA32UI and R32UI): lavapipe fetches texels with vector address arithmetic, where an
// SSBO load at a per-lane address is a scalar loop over the lanes (2x faster mat-vec there).
#if defined(TEXEL_LOADS)
layout(binding = 0) uniform usamplerBuffer wq_texels;
#define WQ(i) texelFetch(wq_texels, int(i))
layout(binding = 1) uniform usamplerBuffer wa_texels;
#define WA(i) texelFetch(wa_texels, int(i)).x
#else
layout(std430, binding = 0) readonly buffer WeightQuants { uvec4 wq[]; };
layout(std430, binding = 1) readonly buffer WeightAux { uint wa[]; };
#define WQ(i) wq[i]
#define WA(i) wa[i]
#endif

// Half number i of the aux array (types with one f16 scale per group).
float aux_half(uint i)
{
    return unpackHalf2x16(WA(i >> 1) >> ((i & 1u) * 16u)).x;
}

// 4-bit levels of chunk word w: lo = weights 0..3, hi = weights 4..7.
void nibbles(uint w, out vec4 lo, out vec4 hi)
{
    lo = vec4(uvec4(w, w >> 8, w >> 16, w >> 24) & 15u);
    hi = vec4(uvec4(w >> 4, w >> 12, w >> 20, w >> 28) & 15u);
}

// 2-bit levels of chunk j of a 64-weight group packed in q: word j/2 holds 16 weights, byte b bit pair k
// holds weight 4k+b of the word.
void crumbs(uvec4 q, uint j, out vec4 lo, out vec4 hi)
{
    uint w = q[j >> 1];
    uint s = 4u * (j & 1u);
    lo = vec4(uvec4(w >> s, w >> (s + 8u), w >> (s + 16u), w >> (s + 24u)) & 3u);
    hi = vec4(uvec4(w >> (s + 2u), w >> (s + 10u), w >> (s + 18u), w >> (s + 26u)) & 3u);
}

// Bits 0..7 of h as 0/1 levels: lo = bits 0..3, hi = bits 4..7.
void bits8(uint h, out vec4 lo, out vec4 hi)
{
    lo = vec4(uvec4(h, h >> 1, h >> 2, h >> 3) & 1u);
    hi = vec4(uvec4(h >> 4, h >> 5, h >> 6, h >> 7) & 1u);
}

// Bit pairs 0..7 of h (16 bits) as levels 0..3.
void pairs8(uint h, out vec4 lo, out vec4 hi)
{
    lo = vec4(uvec4(h, h >> 2, h >> 4, h >> 6) & 3u);
    hi = vec4(uvec4(h >> 8, h >> 10, h >> 12, h >> 14) & 3u);
}

#if defined(INT_DOT)
// Bits 0..3 of h into bit 0 of bytes 0..3 (the shifted copies of h do not overlap, so no carries).
uint spread1(uint h) { return ((h & 15u) * 0x00204081u) & 0x01010101u; }
// Bit pairs 0..3 of h into bits 0..1 of bytes 0..3.
uint spread2(uint h)
{
    uint t = (h | (h << 12)) & 0x000f000fu; // pairs 0, 1 at bits 0..3; pairs 2, 3 at bits 16..19
    return (t | (t << 6)) & 0x03030303u;
}
// The low and the high nibbles of chunk word w (weights 8j..8j+3 and 8j+4..8j+7) as level words.
void nibble_words(uint w, out uint lo, out uint hi)
{
    lo = w & 0x0f0f0f0fu;
    hi = (w >> 4) & 0x0f0f0f0fu;
}
#endif

#if defined(TYPE_F32)
#define GROUP 8u
#define PADDED_ROWS 1 // rows padded with zeros to a multiple of GROUP
struct Group { uvec4 a, b; };
Group load_group(uint G) { return Group(WQ(2u * G), WQ(2u * G + 1u)); }
void chunk(Group g, uint j, out vec4 lo, out vec4 hi, out float s, out float m)
{
    lo = uintBitsToFloat(g.a);
    hi = uintBitsToFloat(g.b);
    s = 1.0;
    m = 0.0;
}

#elif defined(TYPE_F16)
#define GROUP 8u
#define PADDED_ROWS 1
struct Group { uvec4 a; };
Group load_group(uint G) { return Group(WQ(G)); }
void chunk(Group g, uint j, out vec4 lo, out vec4 hi, out float s, out float m)
{
    lo = vec4(unpackHalf2x16(g.a.x), unpackHalf2x16(g.a.y));
    hi = vec4(unpackHalf2x16(g.a.z), unpackHalf2x16(g.a.w));
    s = 1.0;
    m = 0.0;
}

#elif defined(TYPE_BF16)
#define GROUP 8u
#define PADDED_ROWS 1
struct Group { uvec4 a; };
Group load_group(uint G) { return Group(WQ(G)); }
vec2 bf16x2(uint w) { return uintBitsToFloat(uvec2(w << 16, w & 0xffff0000u)); }
void chunk(Group g, uint j, out vec4 lo, out vec4 hi, out float s, out float m)
{
    lo = vec4(bf16x2(g.a.x), bf16x2(g.a.y));
    hi = vec4(bf16x2(g.a.z), bf16x2(g.a.w));
    s = 1.0;
    m = 0.0;
}

#elif defined(TYPE_Q8_0)
// 32 int8 levels in 2 uvec4 (word w = weights 4w..4w+3); aux: one f16 scale per group.
#define GROUP 32u
struct Group { uvec4 a, b; float d; };
Group load_group(uint G) { return Group(WQ(2u * G), WQ(2u * G + 1u), aux_half(G)); }
vec4 int8x4(uint w) { return vec4(ivec4(w << 24, w << 16, w << 8, w) >> 24); }
void chunk(Group g, uint j, out vec4 lo, out vec4 hi, out float s, out float m)
{
    uvec4 v = j < 2u ? g.a : g.b;
    uint i = 2u * (j & 1u);
    lo = int8x4(v[i]);
    hi = int8x4(v[i + 1u]);
    s = g.d;
    m = 0.0;
}
#if defined(INT_DOT)
void levels(Group g, out uint lv[8]) { lv = uint[8](g.a.x, g.a.y, g.a.z, g.a.w, g.b.x, g.b.y, g.b.z, g.b.w); }
float group_dot(Group g, int s[2], int xs[2], float dx[1])
{
    precise float r = dx[0] * g.d * float(s[0] + s[1]);
    return r;
}
#endif

#elif defined(TYPE_Q4_0)
// 32 nibbles in one uvec4; aux: one f16 scale per group.
#define GROUP 32u
struct Group { uvec4 q; float d; };
Group load_group(uint G) { return Group(WQ(G), aux_half(G)); }
void chunk(Group g, uint j, out vec4 lo, out vec4 hi, out float s, out float m)
{
    nibbles(g.q[j], lo, hi);
    lo -= 8.0;
    hi -= 8.0;
    s = g.d;
    m = 0.0;
}
#if defined(INT_DOT)
void levels(Group g, out uint lv[8])
{
    [[unroll]] for (uint j = 0; j < 4u; j++) nibble_words(g.q[j], lv[2u * j], lv[2u * j + 1u]);
}
float group_dot(Group g, int s[2], int xs[2], float dx[1])
{
    precise float r = dx[0] * g.d * float(s[0] + s[1] - 8 * (xs[0] + xs[1]));
    return r;
}
#endif

#elif defined(TYPE_Q4_1)
// aux: d | m << 16 per group.
#define GROUP 32u
#define HAS_MIN 1
struct Group { uvec4 q; vec2 dm; };
Group load_group(uint G) { return Group(WQ(G), unpackHalf2x16(WA(G))); }
void chunk(Group g, uint j, out vec4 lo, out vec4 hi, out float s, out float m)
{
    nibbles(g.q[j], lo, hi);
    s = g.dm.x;
    m = g.dm.y;
}
#if defined(INT_DOT)
void levels(Group g, out uint lv[8])
{
    [[unroll]] for (uint j = 0; j < 4u; j++) nibble_words(g.q[j], lv[2u * j], lv[2u * j + 1u]);
}
float group_dot(Group g, int s[2], int xs[2], float dx[1])
{
    precise float r = dx[0] * (g.dm.x * float(s[0] + s[1]) + g.dm.y * float(xs[0] + xs[1]));
    return r;
}
#endif

#elif defined(TYPE_Q5_0)
// aux: 2 words per group: the fifth bits (bit t = weight t), d.
#define GROUP 32u
struct Group { uvec4 q; uint qh; float d; };
Group load_group(uint G) { return Group(WQ(G), WA(2u * G), unpackHalf2x16(WA(2u * G + 1u)).x); }
void chunk(Group g, uint j, out vec4 lo, out vec4 hi, out float s, out float m)
{
    vec4 bl, bh;
    nibbles(g.q[j], lo, hi);
    bits8(g.qh >> (8u * j), bl, bh);
    lo += 16.0 * bl - 16.0;
    hi += 16.0 * bh - 16.0;
    s = g.d;
    m = 0.0;
}
#if defined(INT_DOT)
// Nibbles and fifth bits (bit t = weight t of the group) as levels 0..31.
void levels(Group g, out uint lv[8])
{
    [[unroll]] for (uint j = 0; j < 4u; j++) {
        nibble_words(g.q[j], lv[2u * j], lv[2u * j + 1u]);
        lv[2u * j] |= spread1(g.qh >> (8u * j)) << 4;
        lv[2u * j + 1u] |= spread1(g.qh >> (8u * j + 4u)) << 4;
    }
}
float group_dot(Group g, int s[2], int xs[2], float dx[1])
{
    precise float r = dx[0] * g.d * float(s[0] + s[1] - 16 * (xs[0] + xs[1]));
    return r;
}
#endif

#elif defined(TYPE_Q5_1)
// aux: 2 words per group: the fifth bits, d | m << 16.
#define GROUP 32u
#define HAS_MIN 1
struct Group { uvec4 q; uint qh; vec2 dm; };
Group load_group(uint G) { return Group(WQ(G), WA(2u * G), unpackHalf2x16(WA(2u * G + 1u))); }
void chunk(Group g, uint j, out vec4 lo, out vec4 hi, out float s, out float m)
{
    vec4 bl, bh;
    nibbles(g.q[j], lo, hi);
    bits8(g.qh >> (8u * j), bl, bh);
    lo += 16.0 * bl;
    hi += 16.0 * bh;
    s = g.dm.x;
    m = g.dm.y;
}
#if defined(INT_DOT)
void levels(Group g, out uint lv[8])
{
    [[unroll]] for (uint j = 0; j < 4u; j++) {
        nibble_words(g.q[j], lv[2u * j], lv[2u * j + 1u]);
        lv[2u * j] |= spread1(g.qh >> (8u * j)) << 4;
        lv[2u * j + 1u] |= spread1(g.qh >> (8u * j + 4u)) << 4;
    }
}
float group_dot(Group g, int s[2], int xs[2], float dx[1])
{
    precise float r = dx[0] * (g.dm.x * float(s[0] + s[1]) + g.dm.y * float(xs[0] + xs[1]));
    return r;
}
#endif

#elif defined(TYPE_Q2_K)
// Groups of 64 (4 per super-block of 256), 2-bit levels in one uvec4.  aux: 5 words per super-block: the
// 16 sub-block bytes (scale | min << 4; group i uses word i), then d | dmin << 16.
#define GROUP 64u
#define HAS_MIN 1
struct Group { uvec4 q; uint sc; vec2 dm; };
Group load_group(uint G)
{
    uint base = 5u * (G >> 2);
    return Group(WQ(G), WA(base + (G & 3u)), unpackHalf2x16(WA(base + 4u)));
}
void chunk(Group g, uint j, out vec4 lo, out vec4 hi, out float s, out float m)
{
    crumbs(g.q, j, lo, hi);
    uint b = g.sc >> (8u * (j >> 1));
    s = g.dm.x * float(b & 15u);
    m = -g.dm.y * float((b >> 4) & 15u);
}
#if defined(INT_DOT)
// Chunk j's crumbs: bit pairs 2(j%2) and 2(j%2)+1 of word j/2's bytes.
void levels(Group g, out uint lv[16])
{
    [[unroll]] for (uint j = 0; j < 8u; j++) {
        uint w = g.q[j >> 1] >> (4u * (j & 1u));
        lv[2u * j] = w & 0x03030303u;
        lv[2u * j + 1u] = (w >> 2) & 0x03030303u;
    }
}
// Scale and minimum per unit of 16 (byte u of sc: scale | min << 4), both integers times d or dmin.
float group_dot(Group g, int s[4], int xs[4], float dx[2])
{
    int ts[2], tm[2];
    [[unroll]] for (uint b = 0; b < 2u; b++) {
        ts[b] = tm[b] = 0;
        [[unroll]] for (uint h = 0; h < 2u; h++) {
            uint sc = g.sc >> (8u * (2u * b + h));
            ts[b] += int(sc & 15u) * s[2u * b + h];
            tm[b] += int((sc >> 4) & 15u) * xs[2u * b + h];
        }
    }
    precise float r = dx[0] * (g.dm.x * float(ts[0]) - g.dm.y * float(tm[0])) +
                      dx[1] * (g.dm.x * float(ts[1]) - g.dm.y * float(tm[1]));
    return r;
}
#endif

#elif defined(TYPE_Q3_K)
// Groups of 64, low 2 bits as Q2_K.  aux: 13 words per super-block: d, the 16 scales as int8 (already
// minus 32; group i uses word i), then 2 words of third bits per group (bit t = weight t of the group).
#define GROUP 64u
struct Group { uvec4 q; uint sc; uvec2 h; float d; };
Group load_group(uint G)
{
    uint base = 13u * (G >> 2), i = G & 3u;
    return Group(WQ(G), WA(base + 1u + i), uvec2(WA(base + 5u + 2u * i), WA(base + 6u + 2u * i)),
                 unpackHalf2x16(WA(base)).x);
}
void chunk(Group g, uint j, out vec4 lo, out vec4 hi, out float s, out float m)
{
    vec4 bl, bh;
    crumbs(g.q, j, lo, hi);
    bits8(g.h[j >> 2] >> (8u * (j & 3u)), bl, bh);
    lo += 4.0 * bl - 4.0;
    hi += 4.0 * bh - 4.0;
    s = g.d * float(int(g.sc << (24u - 8u * (j >> 1))) >> 24);
    m = 0.0;
}
#if defined(INT_DOT)
// Crumbs as Q2_K plus the third bits: levels 0..7.
void levels(Group g, out uint lv[16])
{
    [[unroll]] for (uint j = 0; j < 8u; j++) {
        uint w = g.q[j >> 1] >> (4u * (j & 1u)), h = g.h[j >> 2] >> (8u * (j & 3u));
        lv[2u * j] = (w & 0x03030303u) | (spread1(h) << 2);
        lv[2u * j + 1u] = ((w >> 2) & 0x03030303u) | (spread1(h >> 4) << 2);
    }
}
// int8 scale per unit of 16 (byte u of sc), offset 4.
float group_dot(Group g, int s[4], int xs[4], float dx[2])
{
    int t[2];
    [[unroll]] for (uint b = 0; b < 2u; b++) {
        t[b] = 0;
        [[unroll]] for (uint h = 0; h < 2u; h++) {
            uint u = 2u * b + h;
            t[b] += (int(g.sc << (24u - 8u * u)) >> 24) * (s[u] - 4 * xs[u]);
        }
    }
    precise float r = dx[0] * g.d * float(t[0]) + dx[1] * g.d * float(t[1]);
    return r;
}
#endif

#elif defined(TYPE_Q4_K) || defined(TYPE_Q5_K)
// Groups of 32 (8 per super-block), nibbles as Q4_0.  aux per super-block: d | dmin << 16, the 8 scales
// (2 words of bytes), the 8 mins (2 words); Q5_K adds one word of fifth bits per group (13 words).
#define GROUP 32u
#define HAS_MIN 1
#if defined(TYPE_Q5_K)
#define AUX_WORDS 13u
#else
#define AUX_WORDS 5u
#endif
struct Group { uvec4 q; uint qh; float s, m; };
Group load_group(uint G)
{
    uint base = AUX_WORDS * (G >> 3), i = G & 7u, shift = 8u * (i & 3u);
    vec2 dm = unpackHalf2x16(WA(base));
    float sc = float((WA(base + 1u + (i >> 2)) >> shift) & 255u);
    float mn = float((WA(base + 3u + (i >> 2)) >> shift) & 255u);
#if defined(TYPE_Q5_K)
    uint qh = WA(base + 5u + i);
#else
    uint qh = 0u;
#endif
    return Group(WQ(G), qh, dm.x * sc, -dm.y * mn);
}
void chunk(Group g, uint j, out vec4 lo, out vec4 hi, out float s, out float m)
{
    nibbles(g.q[j], lo, hi);
#if defined(TYPE_Q5_K)
    vec4 bl, bh;
    bits8(g.qh >> (8u * j), bl, bh);
    lo += 16.0 * bl;
    hi += 16.0 * bh;
#endif
    s = g.s;
    m = g.m;
}
#if defined(INT_DOT)
void levels(Group g, out uint lv[8])
{
    [[unroll]] for (uint j = 0; j < 4u; j++) {
        nibble_words(g.q[j], lv[2u * j], lv[2u * j + 1u]);
#if defined(TYPE_Q5_K)
        lv[2u * j] |= spread1(g.qh >> (8u * j)) << 4;
        lv[2u * j + 1u] |= spread1(g.qh >> (8u * j + 4u)) << 4;
#endif
    }
}
float group_dot(Group g, int s[2], int xs[2], float dx[1])
{
    precise float r = dx[0] * (g.s * float(s[0] + s[1]) + g.m * float(xs[0] + xs[1]));
    return r;
}
#endif

#elif defined(TYPE_Q6_K)
// Groups of 32 (8 per super-block), low nibbles as Q4_0.  aux: 21 words per super-block: d, the 16 int8
// scales (4 words), then 2 words of high bit pairs per group (pair t = weight t of the group).
#define GROUP 32u
struct Group { uvec4 q; uvec2 h; uint sc; float d; };
Group load_group(uint G)
{
    uint base = 21u * (G >> 3), i = G & 7u;
    return Group(WQ(G), uvec2(WA(base + 5u + 2u * i), WA(base + 6u + 2u * i)),
                 WA(base + 1u + (i >> 1)) >> (16u * (i & 1u)), unpackHalf2x16(WA(base)).x);
}
void chunk(Group g, uint j, out vec4 lo, out vec4 hi, out float s, out float m)
{
    vec4 pl, ph;
    nibbles(g.q[j], lo, hi);
    pairs8(g.h[j >> 1] >> (16u * (j & 1u)), pl, ph);
    lo += 16.0 * pl - 32.0;
    hi += 16.0 * ph - 32.0;
    s = g.d * float(int(g.sc << (24u - 8u * (j >> 1))) >> 24);
    m = 0.0;
}
#if defined(INT_DOT)
// Nibbles and high bit pairs (pair t of h = weight t of the group) as levels 0..63.
void levels(Group g, out uint lv[8])
{
    [[unroll]] for (uint j = 0; j < 4u; j++) {
        uint h = g.h[j >> 1] >> (16u * (j & 1u));
        nibble_words(g.q[j], lv[2u * j], lv[2u * j + 1u]);
        lv[2u * j] |= spread2(h & 255u) << 4;
        lv[2u * j + 1u] |= spread2((h >> 8) & 255u) << 4;
    }
}
// int8 scale per unit of 16 (byte u of sc), offset 32.
float group_dot(Group g, int s[2], int xs[2], float dx[1])
{
    int t = (int(g.sc << 24) >> 24) * (s[0] - 32 * xs[0]) + (int(g.sc << 16) >> 24) * (s[1] - 32 * xs[1]);
    precise float r = dx[0] * g.d * float(t);
    return r;
}
#endif

#else
#error "dequant.glsl: define one TYPE_*"
#endif

#define CHUNKS (GROUP / 8u)

#endif
