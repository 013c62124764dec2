#include "mapped_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/error.h"

vkllm_status mapped_file_open(const char *path, mapped_file *out)
{
    *out = (mapped_file){0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return vkllm_fail(VKLLM_ERROR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return vkllm_fail(VKLLM_ERROR_IO, "cannot stat %s: %s", path, strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return vkllm_fail(VKLLM_ERROR_IO, "cannot map %s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return vkllm_fail(VKLLM_ERROR_IO, "cannot map %s: %lld bytes exceed the address space", path,
                          (long long)st.st_size);
    }
    /* mmap rejects a zero length; an empty file is left to the parser to reject as truncated. */
    if (st.st_size == 0) {
        close(fd);
        return VKLLM_OK;
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd); /* the mapping keeps the file alive */
    if (map == MAP_FAILED) return vkllm_fail(VKLLM_ERROR_IO, "cannot mmap %s: %s", path, strerror(err));
    out->data = map;
    out->size = (uint64_t)st.st_size;
    return VKLLM_OK;
}

void mapped_file_close(mapped_file *file)
{
    if (file->data) munmap((void *)file->data, (size_t)file->size);
    *file = (mapped_file){0};
}
