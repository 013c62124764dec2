#version 450
// samples/render_loop.c's scene: n_tris triangles on a spiral, turning with time; no vertex buffer (each vertex
// is computed from gl_VertexIndex).
layout(push_constant) uniform Push {
    float time;
    uint n_tris;
} p;
layout(location = 0) out vec3 color;

void main()
{
    uint tri = uint(gl_VertexIndex) / 3u, corner = uint(gl_VertexIndex) % 3u;
    float fi = float(tri);
    float a = fi * 2.39996 + p.time;
    float r = sqrt(fi / float(p.n_tris)) * 0.9;
    vec2 centre = vec2(cos(a), sin(a)) * r;
    float turn = p.time * 2.0 + fi + float(corner) * 2.0943951;
    gl_Position = vec4(centre + 0.08 * vec2(cos(turn), sin(turn)), 0.0, 1.0);
    color = vec3(0.5 + 0.5 * cos(fi * 0.1), 0.5 + 0.5 * sin(fi * 0.07 + p.time), float(corner) * 0.5);
}
