/* acme_ask: a worker's side of the on-demand ACME channel: tells the master, over a pipe made before the
 * fork, which claimed host name without a certificate a client asked for; rate-limited, never blocks. */
#include "acme_ask.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "names.h"

struct asked {
	char name[NAME_MAX_LEN + 1];
	uint64_t at;
};

/* Per worker process (the master never asks). */
static struct {
	int fd;
	struct asked names[ACME_ASK_NAMES];
	uint64_t second; /* the start of the current one-second window */
	unsigned in_second;
} asker = {.fd = -1};

void acme_ask_init(int fd)
{
	asker.fd = fd;
}

/* The entry for name, else the one to reuse (a free one, or the oldest). */
static struct asked *slot_for(const char *name)
{
	struct asked *oldest = &asker.names[0];

	for (size_t i = 0; i < ACME_ASK_NAMES; i++) {
		struct asked *a = &asker.names[i];
		if (strcmp(a->name, name) == 0)
			return a;
		if (a->at < oldest->at)
			oldest = a;
	}
	return oldest;
}

static bool within_rate(uint64_t now_ms)
{
	if (now_ms - asker.second >= 1000) {
		asker.second = now_ms;
		asker.in_second = 0;
	}
	return asker.in_second < ACME_ASK_PER_SECOND;
}

void acme_ask(const char *name, uint64_t now_ms)
{
	char line[NAME_MAX_LEN + 2];
	size_t len = strlen(name);

	if (asker.fd < 0 || len == 0 || len > NAME_MAX_LEN)
		return;
	struct asked *a = slot_for(name);
	bool known = strcmp(a->name, name) == 0;
	if ((known && a->at && now_ms - a->at < ACME_ASK_INTERVAL_MS) || !within_rate(now_ms))
		return;
	memcpy(line, name, len);
	line[len] = '\n';
	/* At most 254 bytes: below PIPE_BUF, so the write is whole or nothing. A full pipe means
	 * the master has many requests already; this one is dropped and asked again later. */
	if (write(asker.fd, line, len + 1) != (ssize_t)(len + 1))
		return;
	asker.in_second++;
	snprintf(a->name, sizeof(a->name), "%s", name);
	a->at = now_ms ? now_ms : 1;
	log_debug("asked the master for a certificate for %s", name);
}
