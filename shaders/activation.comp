#version 450
// Element-wise activations, F32:
//   OP_SWIGLU: out[i] = silu(gate[i]) * up[i],  silu(g) = g / (1 + exp(-g))
//   OP_SWIGLU_PAIRS: the same with gate and up alternating in one array: out[i] = silu(a[2i]) * a[2i+1]
//   OP_GELU:   out[i] = gelu(x[i]) with ggml's tanh approximation,
//              0.5*x*(1 + tanh(sqrt(2/pi)*x*(1 + 0.044715*x^2))), computed as x / (1 + exp(-2u)) (the same
//              function: 0.5*(1 + tanh(u)) = 1/(1 + exp(-2u))), which stays finite where tanh's exp overflows.
#include "common.glsl"
layout(std430, binding = 0) readonly buffer A { float a[]; };
#if defined(OP_SWIGLU_PAIRS)
layout(std430, binding = 0) readonly buffer A2 { vec2 a2[]; };
layout(std430, binding = 1) writeonly buffer Out { float result[]; };
#elif defined(OP_SWIGLU)
layout(std430, binding = 1) readonly buffer B { float up[]; };
layout(std430, binding = 2) writeonly buffer Out { float result[]; };
#else
layout(std430, binding = 1) writeonly buffer Out { float result[]; };
#endif
layout(push_constant) uniform Push { uint n; } p;

const float SQRT_2_OVER_PI = 0.79788456080286535587989211986876;
const float GELU_COEF_A = 0.044715;

void main()
{
    uint i = linear_invocation();
    if (i >= p.n) return;
#if defined(OP_SWIGLU_PAIRS)
    const vec2 gu = a2[i];
    result[i] = gu.x / (1.0 + exp(-gu.x)) * gu.y;
    return;
#endif
    float v = a[i];
#if defined(OP_SWIGLU)
    result[i] = v / (1.0 + exp(-v)) * up[i];
#elif defined(OP_GELU)
    float u = SQRT_2_OVER_PI * v * (1.0 + GELU_COEF_A * v * v);
    result[i] = v / (1.0 + exp(-2.0 * u));
#endif
}
