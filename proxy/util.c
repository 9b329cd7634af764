/* util: allocation wrappers that abort on failure (out of memory is not a recoverable state here), and the
 * opening of files the configuration names. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

static void *check(void *p)
{
	if (p == NULL) {
		fputs("livery: out of memory\n", stderr);
		abort();
	}
	return p;
}

void *xmalloc(size_t n)
{
	return check(malloc(n ? n : 1));
}

void *xcalloc(size_t n, size_t size)
{
	return check(calloc(n ? n : 1, size ? size : 1));
}

void *xrealloc(void *p, size_t n)
{
	return check(realloc(p, n ? n : 1));
}

char *xstrdup(const char *s)
{
	return check(strdup(s));
}

char *xstrndup(const char *s, size_t n)
{
	return check(strndup(s, n));
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *out = NULL;

	va_start(ap, fmt);
	int n = vasprintf(&out, fmt, ap);
	va_end(ap);
	if (n < 0)
		check(NULL);
	return out;
}

void *xmmap_shared(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return check(p == MAP_FAILED ? NULL : p);
}

uint64_t util_random_seed(void)
{
	uint64_t seed;

	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		/* No entropy yet: at least not 0. */
		seed = (uint64_t)(uintptr_t)&seed ^ 0x9e3779b97f4a7c15ULL;
	return seed;
}

/* O_NONBLOCK: opening a FIFO for reading would wait for a writer; fstat then refuses it. */
FILE *util_fopen_regular(const char *path, const char **why)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd < 0) {
		*why = strerror(errno);
		return NULL;
	}
	bool stat_ok = fstat(fd, &st) == 0;
	if (!stat_ok || !S_ISREG(st.st_mode)) {
		*why = !stat_ok              ? strerror(errno)
		       : S_ISDIR(st.st_mode) ? strerror(EISDIR)
		                             : "not a regular file";
		close(fd);
		return NULL;
	}
	FILE *f = fcntl(fd, F_SETFL, 0) == 0 ? fdopen(fd, "r") : NULL;
	if (!f) {
		*why = strerror(errno);
		close(fd);
	}
	return f;
}

char *util_read_file(const char *path, size_t max, size_t *len, const char **why)
{
	FILE *f = util_fopen_regular(path, why);
	char *buf = f ? xmalloc(max + 1) : NULL;

	*len = 0;
	if (!f)
		return NULL;
	*len = fread(buf, 1, max + 1, f);
	bool bad = ferror(f) || *len > max;
	fclose(f);
	if (bad) {
		*why = strerror(*len > max ? EFBIG : EIO);
		explicit_bzero(buf, *len);
		free(buf);
		return NULL;
	}
	buf[*len] = '\0';
	return buf;
}
