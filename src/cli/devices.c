#include <stdio.h>

#include "cli.h"

int cli_devices(int argc, char **argv)
{
    fprintf(stderr, "vkllm devices: not yet\n");
    return 1;
}
