/* check: `livery check -c FILE [--dns]`, a report on a configuration for the operator: config errors,
 * and per branded host name its certificate, key, chain, names, expiry, ACME state and (with --dns) the DNS
 * records a brand must publish against what the resolver returns today. */
#ifndef LIVERY_CHECK_H
#define LIVERY_CHECK_H

#include <jansson.h>
#include <stdio.h>

struct config;

/* The whole subcommand: argv[0] is "check". Returns the exit status (0 no error, 1 errors
 * found, 2 usage). */
int check_main(int argc, char **argv);

struct check_report {
	FILE *out;
	unsigned errors, warnings;
	long long now;
	const struct config *cfg;
	json_t *acme_state; /* the ACME state.json, when acme is configured and it exists */
};

/* One report line under a host name; levels "error" and "warn" are counted. */
void check_say(struct check_report *r, const char *level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

#endif
