#version 450
// samples/render_loop.c's shading: a few iterations of arithmetic per pixel, so that a frame costs some time.
layout(location = 0) in vec3 color;
layout(location = 0) out vec4 frag;

void main()
{
    vec3 c = color;
    for (int i = 0; i < 8; i++) c = fract(c * 1.7 + vec3(0.1, 0.2, 0.3));
    frag = vec4(mix(color, c, 0.25), 1.0);
}
