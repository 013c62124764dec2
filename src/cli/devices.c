/* vkllm devices: every Vulkan device vkllm can use, with its capabilities; the chosen one is marked. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "options.h"
#include "runtime/device.h"

static void usage(FILE *out) { fputs("usage: vkllm devices\n  lists every Vulkan device vkllm can use\n", out); }

int cli_devices(int argc, char **argv)
{
    char err[256];
    cli_parse_result parsed = cli_parse_devices_options(argc, argv, err, sizeof err);
    if (parsed != CLI_PARSE_OK) return cli_parse_exit("devices", parsed, err, usage);
    vkr_caps *caps = NULL;
    uint32_t count = 0, chosen = 0;
    vkllm_status st = vkr_list_devices(&caps, &count, &chosen);
    if (st != VKLLM_OK) {
        fprintf(stderr, "vkllm devices: %s\n", vkllm_last_error());
        return 1;
    }
    if (count == 0) printf("no Vulkan 1.2 device with a compute queue\n");
    for (uint32_t i = 0; i < count; i++) {
        printf("device %u%s\n", i, i == chosen ? "  [chosen]" : "");
        vkr_caps_print(&caps[i], stdout);
    }
    free(caps);
    return 0;
}
