// IEEE binary16 <-> binary32 on bit patterns, in integer arithmetic so the result is the same on every
// device (packHalf2x16's rounding is implementation-defined; some hardware flushes half subnormals), and
// bit-identical to quant/half.c: round to nearest even, subnormals kept, overflow to infinity, NaN ->
// quiet NaN (f32 -> f16 gives 0x7e00 with the sign; f16 -> f32 keeps the payload and sets the quiet bit).
#ifndef VKLLM_HALF_GLSL
#define VKLLM_HALF_GLSL

// value >> shift (shift 1..31), rounded to nearest, ties to even.
uint shift_right_round_even(uint value, uint shift)
{
    uint kept = value >> shift;
    uint rest = value & ((1u << shift) - 1u);
    uint half_way = 1u << (shift - 1u);
    if (rest > half_way || (rest == half_way && (kept & 1u) != 0u)) kept++;
    return kept;
}

uint f32_bits_to_f16(uint bits)
{
    uint sign = (bits >> 16) & 0x8000u;
    uint magnitude = bits & 0x7fffffffu;
    if (magnitude > 0x7f800000u) return sign | 0x7e00u;  // NaN
    if (magnitude >= 0x477ff000u) return sign | 0x7c00u; // >= 65520 rounds past the largest half
    // >= 2^-14, a normal half: rebias the exponent and round the mantissa; a carry bumps the exponent.
    if (magnitude >= 0x38800000u) return sign | shift_right_round_even(magnitude - 0x38000000u, 13u);
    uint exponent = magnitude >> 23;
    if (exponent < 102u) return sign; // below 2^-25: rounds to zero
    uint mantissa = (magnitude & 0x7fffffu) | 0x800000u; // a subnormal half counts units of 2^-24
    return sign | shift_right_round_even(mantissa, 126u - exponent);
}

uint f16_bits_to_f32(uint h)
{
    uint sign = (h & 0x8000u) << 16;
    uint exponent = (h >> 10) & 0x1fu;
    uint mantissa = h & 0x3ffu;
    if (exponent == 0x1fu) return sign | 0x7f800000u | (mantissa << 13) | (mantissa != 0u ? 0x400000u : 0u);
    if (exponent != 0u) return sign | ((exponent + 112u) << 23) | (mantissa << 13);
    if (mantissa == 0u) return sign;
    // Subnormal half mantissa * 2^-24 with its top bit at position msb: a normal float 2^(msb - 24) * 1.f.
    uint msb = uint(findMSB(mantissa));
    return sign | ((msb + 103u) << 23) | ((mantissa << (23u - msb)) & 0x7fffffu);
}

#endif
