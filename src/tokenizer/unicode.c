#include "unicode.h"

unicode_category unicode_category_of(uint32_t cpt)
{
    if (cpt > 0x10FFFF) return UNICODE_UNDEFINED;
    /* Last range whose first code point is <= cpt. */
    size_t lo = 0, hi = unicode_category_range_count;
    while (hi - lo > 1) {
        const size_t mid = lo + (hi - lo) / 2;
        if ((unicode_category_ranges[mid] >> 3) <= cpt) lo = mid;
        else hi = mid;
    }
    return (unicode_category)(unicode_category_ranges[lo] & 7);
}

bool unicode_is_whitespace(uint32_t cpt)
{
    size_t lo = 0, hi = unicode_whitespace_count;
    while (lo < hi) {
        const size_t mid = lo + (hi - lo) / 2;
        if (unicode_whitespace[mid] == cpt) return true;
        if (unicode_whitespace[mid] < cpt) lo = mid + 1;
        else hi = mid;
    }
    return false;
}
