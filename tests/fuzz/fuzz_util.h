/* fuzz_util.h - what the libFuzzer targets of tests/fuzz/ share: REQUIRE (abort on a broken
 * promise, which libFuzzer reports as a crash with the input), TERMINATED (a string field is
 * NUL-terminated within its buffer), fuzz_key_id_canonical (the reference check of a key ID
 * as the parsers must emit it), and the input as a file for loaders that only take a
 * path (the INI loaders on common/ini_config.h): an anonymous memory file (memfd_create(2)),
 * read back through /proc/self/fd/N, so no file is written to disk. Header only: each target
 * is one translation unit (Makefile: build-fuzz/fuzz_NAME). */
#ifndef QK_FUZZ_UTIL_H
#define QK_FUZZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

#include "codec.h"

#define REQUIRE(c)                                                                                 \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "broken promise: %s (line %d)\n", #c, __LINE__);                       \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define TERMINATED(field) REQUIRE(memchr((field), '\0', sizeof(field)) != NULL)

/* A key ID in its canonical text: a UUID as 8-4-4-4-12 lower-case hex digits (ETSI GS QKD 014
 * section 6.3 Table 11: key_ID is a UUID; RFC 4122 section 3 text form; lower case:
 * docs/conformance.md decision E4). Written out rather than calling qk_uuid_parse, so that the
 * targets check the parsers against a model of their own. */
static inline bool fuzz_key_id_canonical(const char *s)
{
    if (strlen(s) != QK_UUID_STR_LEN)
        return false;
    for (size_t i = 0; i < QK_UUID_STR_LEN; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        char c = s[i];
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

typedef struct {
    int fd;
    char path[64]; /* "/proc/self/fd/N": what the loader opens */
} fuzz_memfile;

/* Create the memory file (from LLVMFuzzerInitialize). 0, or -1 with the reason on stderr. */
static inline int fuzz_memfile_open(fuzz_memfile *f, const char *name)
{
    f->fd = memfd_create(name, MFD_CLOEXEC);
    if (f->fd < 0) {
        perror("fuzz: memfd_create");
        return -1;
    }
    snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
    if (access(f->path, R_OK) != 0) {
        perror("fuzz: /proc/self/fd");
        close(f->fd);
        f->fd = -1;
        return -1;
    }
    return 0;
}

/* Make the input the whole content of the file. 0 or -1. */
static inline int fuzz_memfile_put(const fuzz_memfile *f, const uint8_t *data, size_t size)
{
    if (ftruncate(f->fd, 0) != 0)
        return -1;
    size_t off = 0;
    while (off < size) {
        ssize_t n = pwrite(f->fd, data + off, size - off, (off_t)off);
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    return 0;
}

#endif
