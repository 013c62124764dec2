#version 450
// Embedding gather: out[i][c] = table[ids[i]][c], F32 out, one invocation per output element.  The table
// may exceed maxStorageBufferRange, so the host binds it a chunk of rows at a time (one dispatch each); a
// dispatch writes only the ids inside its chunk.  Ids outside [0, n_rows) give a row of zeros, written by
// the dispatch that has write_invalid set.
//   TABLE_F16: halves packed two to a 32-bit word, read with unpackHalf2x16 (no 16-bit storage needed).
#include "common.glsl"
#if defined(TABLE_F16)
layout(std430, binding = 0) readonly buffer Table { uint table[]; };
#else
layout(std430, binding = 0) readonly buffer Table { float table[]; };
#endif
layout(std430, binding = 1) readonly buffer Ids { int ids[]; };
layout(std430, binding = 2) writeonly buffer Out { float result[]; };
layout(push_constant) uniform Push {
    uint n_out;         // n_ids * row_len
    uint row_len;
    uint n_rows;        // of the whole table
    uint chunk_first;   // first table row of this chunk
    uint chunk_rows;
    uint chunk_elem;    // element index of row chunk_first inside the bound range
    uint write_invalid;
} p;
void main()
{
    uint g = linear_invocation();
    if (g >= p.n_out) return;
    uint i = g / p.row_len;
    uint c = g - i * p.row_len;
    int id = ids[i];
    if (id < 0 || uint(id) >= p.n_rows) {
        if (p.write_invalid != 0) result[g] = 0.0;
        return;
    }
    uint r = uint(id) - p.chunk_first; // wraps past chunk_rows for ids before the chunk
    if (r >= p.chunk_rows) return;
    uint e = p.chunk_elem + r * p.row_len + c;
#if defined(TABLE_F16)
    vec2 pair = unpackHalf2x16(table[e >> 1]);
    result[g] = (e & 1u) != 0u ? pair.y : pair.x;
#else
    result[g] = table[e];
#endif
}
