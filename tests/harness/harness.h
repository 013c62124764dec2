#ifndef VKLLM_TEST_HARNESS_H
#define VKLLM_TEST_HARNESS_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#endif
