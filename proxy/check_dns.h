/* check_dns: the DNS part of `livery check --dns`: asks the resolver (libresolv) what each brand publishes
 * today and compares it with what livery needs: a CNAME (or the same A/AAAA) to the listener's host name,
 * RFC 6186 SRV records, CAA. */
#ifndef LIVERY_CHECK_DNS_H
#define LIVERY_CHECK_DNS_H

#include <stdbool.h>

#include "check.h"
#include "config.h"

/* Initialises the resolver; server ("ADDR[:PORT]", IPv4) replaces /etc/resolv.conf's servers.
 * False when server does not parse. */
bool check_dns_init(const char *server);
/* The report lines for one brand host name. */
void check_dns_hostname(struct check_report *r, const struct config *cfg, const char *hostname);
/* What the report says once about sender authentication. */
void check_dns_note(struct check_report *r, const struct config *cfg);

#endif
