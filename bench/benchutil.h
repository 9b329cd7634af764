/* benchutil: small helpers shared by the bench tools (growable byte buffer, fatal errors, clocks,
 * percentiles); libc only. */
#ifndef LIVERY_BENCHUTIL_H
#define LIVERY_BENCHUTIL_H

#include <stddef.h>

struct bu_buf {
	char *data;
	size_t off; /* first unread byte */
	size_t len; /* end of valid data */
	size_t cap;
};

void bu_buf_append(struct bu_buf *b, const void *p, size_t n);
void bu_buf_consume(struct bu_buf *b, size_t n);
void bu_buf_free(struct bu_buf *b);

/* A growable array of samples (milliseconds). */
struct bu_samples {
	double *v;
	size_t n, cap;
};

void bu_samples_add(struct bu_samples *s, double v);
/* The p-th percentile (0..100, nearest rank) of the samples; sorts them. 0 when empty. */
double bu_percentile(struct bu_samples *s, double p);
void bu_samples_free(struct bu_samples *s);

/* Monotonic wall clock in seconds. */
double bu_now(void);
void *bu_xmalloc(size_t n);
void *bu_xcalloc(size_t n, size_t size);
_Noreturn void bu_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
