/* vkllm devices: every Vulkan device vkllm can use, with its capabilities; the default one is marked.  Through
 * the public API, as an embedding program would list them. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "options.h"
#include "vkllm.h"

static void usage(FILE *out) { fputs("usage: vkllm devices\n  lists every Vulkan device vkllm can use\n", out); }

int cli_devices(int argc, char **argv)
{
    char err[256];
    cli_parse_result parsed = cli_parse_devices_options(argc, argv, err, sizeof err);
    if (parsed != CLI_PARSE_OK) return cli_parse_exit("devices", parsed, err, usage);
    uint32_t count = 0;
    vkllm_status st = vkllm_device_count(&count);
    if (st == VKLLM_OK && count == 0) printf("no Vulkan 1.2 device with a compute queue\n");
    for (uint32_t i = 0; st == VKLLM_OK && i < count; i++) {
        vkllm_device_properties props;
        size_t len = 0;
        st = vkllm_device_info(i, &props);
        if (st == VKLLM_OK) st = vkllm_device_describe(i, NULL, 0, &len);
        if (st != VKLLM_ERROR_BUFFER_TOO_SMALL) break;
        char *text = malloc(len + 1);
        if (!text) {
            fprintf(stderr, "vkllm devices: out of memory\n");
            return 1;
        }
        st = vkllm_device_describe(i, text, len + 1, &len);
        if (st == VKLLM_OK) printf("device %u%s\n%s", i, props.is_default ? "  [chosen]" : "", text);
        free(text);
    }
    if (st != VKLLM_OK) {
        fprintf(stderr, "vkllm devices: %s\n", vkllm_last_error());
        return 1;
    }
    return 0;
}
