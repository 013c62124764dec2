#include "fault.h"

#include <stdlib.h>
#include <string.h>

static const char *const kind_names[VKR_FAULT_KIND_COUNT] = {"alloc", "submit", "timeout"};

vkllm_status vkr_faults_parse(const char *spec, vkr_faults *faults)
{
    for (int k = 0; k < VKR_FAULT_KIND_COUNT; k++) {
        faults->at[k] = 0;
        atomic_init(&faults->calls[k], 0);
    }
    if (!spec) return VKLLM_OK;
    const char *entry = spec;
    while (*entry) {
        size_t len = strcspn(entry, ",");
        const char *colon = memchr(entry, ':', len);
        int kind = -1;
        for (int k = 0; colon && k < VKR_FAULT_KIND_COUNT; k++)
            if ((size_t)(colon - entry) == strlen(kind_names[k]) && !strncmp(entry, kind_names[k], strlen(kind_names[k])))
                kind = k;
        uint64_t n = 0;
        bool digits = colon && colon + 1 < entry + len;
        for (const char *p = colon ? colon + 1 : entry; digits && p < entry + len; p++) {
            if (*p < '0' || *p > '9' || n > (UINT64_MAX - 9) / 10) digits = false;
            else n = n * 10 + (uint64_t)(*p - '0');
        }
        if (kind < 0 || !digits || n == 0)
            return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "VKLLM_FAIL_INJECT='%s': entry '%.*s' is not KIND:N with "
                              "KIND alloc, submit or timeout and N a call number from 1", spec, (int)len, entry);
        faults->at[kind] = n;
        entry += len;
        if (*entry == ',') entry++;
    }
    return VKLLM_OK;
}

void vkr_faults_arm(vkr_faults *faults, vkr_fault_kind kind, uint64_t n)
{
    faults->at[kind] = n ? atomic_load(&faults->calls[kind]) + n : 0;
}

bool vkr_fault_fires(vkr_faults *faults, vkr_fault_kind kind)
{
    /* Counted also when nothing is armed, so a test can learn how many calls a step makes (vkr_device_fault_calls). */
    uint64_t call = atomic_fetch_add_explicit(&faults->calls[kind], 1, memory_order_relaxed) + 1;
    if (!faults->at[kind]) return false;
    /* A lost device stays lost: every submission from the chosen one on fails. */
    return kind == VKR_FAULT_SUBMIT ? call >= faults->at[kind] : call == faults->at[kind];
}
