#include "utf8.h"

size_t utf8_sequence_length(uint8_t lead)
{
    static const uint8_t by_high_nibble[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return by_high_nibble[lead >> 4];
}

static int is_continuation(const char *s, size_t len, size_t at)
{
    return at < len && ((uint8_t)s[at] & 0xC0) == 0x80;
}

uint32_t utf8_decode(const char *s, size_t len, size_t *offset)
{
    const size_t at = *offset;
    const uint8_t lead = (uint8_t)s[at];
    size_t n;
    uint32_t cpt;
    if (lead < 0x80) {
        *offset = at + 1;
        return lead;
    }
    /* Overlong forms are accepted, as llama.cpp does; only structure is checked. */
    if ((lead & 0xE0) == 0xC0) {
        n = 2;
        cpt = lead & 0x1F;
    } else if ((lead & 0xF0) == 0xE0) {
        n = 3;
        cpt = lead & 0x0F;
    } else if ((lead & 0xF8) == 0xF0) {
        n = 4;
        cpt = lead & 0x07;
    } else {
        *offset = at + 1;
        return UTF8_REPLACEMENT;
    }
    for (size_t i = 1; i < n; i++) {
        if (!is_continuation(s, len, at + i)) {
            *offset = at + 1;
            return UTF8_REPLACEMENT;
        }
        cpt = (cpt << 6) | ((uint8_t)s[at + i] & 0x3F);
    }
    if (cpt > 0x10FFFF) {
        *offset = at + 1;
        return UTF8_REPLACEMENT;
    }
    *offset = at + n;
    return cpt;
}

size_t utf8_encode(uint32_t cpt, char out[4])
{
    if (cpt < 0x80) {
        out[0] = (char)cpt;
        return 1;
    }
    if (cpt < 0x800) {
        out[0] = (char)(0xC0 | (cpt >> 6));
        out[1] = (char)(0x80 | (cpt & 0x3F));
        return 2;
    }
    if (cpt < 0x10000) {
        out[0] = (char)(0xE0 | (cpt >> 12));
        out[1] = (char)(0x80 | ((cpt >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cpt & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cpt >> 18));
    out[1] = (char)(0x80 | ((cpt >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cpt >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cpt & 0x3F));
    return 4;
}

size_t utf8_incomplete_tail(const char *s, size_t len)
{
    for (size_t back = 1; back <= 3 && back <= len; back++) {
        const uint8_t byte = (uint8_t)s[len - back];
        if ((byte & 0xC0) == 0x80) continue; /* a continuation byte: look further back */
        if (byte < 0xC0) return 0;           /* ASCII */
        const size_t need = (byte & 0xE0) == 0xC0 ? 2 : (byte & 0xF0) == 0xE0 ? 3 : (byte & 0xF8) == 0xF0 ? 4 : 1;
        return need > back ? back : 0;
    }
    return 0;
}

size_t utf8_sanitize(const char *s, size_t len, char *out)
{
    size_t written = 0;
    for (size_t at = 0; at < len;) {
        const size_t start = at;
        uint32_t cpt = utf8_decode(s, len, &at);
        if (cpt >= 0xD800 && cpt <= 0xDFFF) cpt = UTF8_REPLACEMENT;
        char bytes[4];
        size_t n = utf8_encode(cpt, bytes);
        /* An overlong form decodes to a code point whose shortest form is shorter than what was read. */
        if (cpt != UTF8_REPLACEMENT && n != at - start) n = utf8_encode(UTF8_REPLACEMENT, bytes);
        for (size_t i = 0; i < n; i++) out[written++] = bytes[i];
    }
    out[written] = '\0';
    return written;
}
