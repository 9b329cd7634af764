/* util: allocation wrappers that abort on failure, and small macros shared by every module. */
#ifndef LIVERY_UTIL_H
#define LIVERY_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define ARRAY_LEN(a)                    (sizeof(a) / sizeof((a)[0]))
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Returns a newly allocated string built like printf. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* len zeroed bytes of anonymous memory shared with the processes forked after (munmap frees
 * it), and a secret seed for the hashes kept in it, so nobody can make keys collide on
 * purpose. */
void *xmmap_shared(size_t len);
uint64_t util_random_seed(void);
/* Opens a file named in the configuration for reading, only when it is a regular file (after
 * symbolic links): a FIFO, a device or a socket named by mistake would block the master in
 * open(2) or read(2), or never end. NULL with the reason, for "cannot read X: why", in *why. */
FILE *util_fopen_regular(const char *path, const char **why);
/* The whole of such a file, NUL-terminated, its length in *len; NULL with the reason in *why
 * when it cannot be read or holds more than max octets (what was read is wiped then: the
 * file may hold a secret). */
char *util_read_file(const char *path, size_t max, size_t *len, const char **why);

#endif
