/* config: the only user of libconfig; parses and validates a file into an immutable struct, reporting errors
 * as "file:line: message". */
#ifndef LIVERY_CONFIG_H
#define LIVERY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cidr.h"
#include "log.h"
#include "quota_key.h"
#include "smtp_proto.h"

#define CONFIG_DEFAULT_CA_FILE "/etc/ssl/certs/ca-certificates.crt"

enum tls_mode { TLS_MODE_STARTTLS, TLS_MODE_IMPLICIT };

/* One relay host of a region, tried in order. */
struct relay_host {
	char *host;        /* name or IP literal */
	char *verify_name; /* what its certificate must match */
	char *sni;         /* host when it is a name, else verify_name */
};

struct region_cfg {
	char *name;
	struct relay_host *hosts;
	size_t nhosts;
	int port;
	enum tls_mode tls;
	char *ca_file;
	char *ehlo_name;
	unsigned connect_timeout_ms;
	bool tls_resumption;
	char **scrub; /* configured words plus every host and verify_name */
	size_t nscrub;
	char *src_file; /* where the region is defined (the main file for built-ins) */
	int line;
};

/* How a tenant's clients authenticate (issue 12). */
enum tenant_auth { TENANT_AUTH_PASSTHROUGH, TENANT_AUTH_LOCAL };

struct users; /* users.h: a tenant's users_file */

/* A tenant's authentication settings. The users table and the relay password are read by
 * config_load (the master, as root, before the privilege drop and at every reload); the
 * password is a secret: never logged, never printed by --check or `livery check`. */
struct tenant_auth_cfg {
	enum tenant_auth mode;
	char **domains; /* passthrough: login names must be user@ one of these (none: any) */
	size_t ndomains;
	char *users_file;          /* local: absolute path */
	struct users *users;       /* local: its table */
	char *relay_user;          /* local: livery's own AUTH at the relay */
	char *relay_password_file; /* local: absolute path */
	char *relay_password;      /* local: its first line */
	unsigned cache_ttl_ms;     /* local: how long a verified password is remembered */
};

struct tenant_cfg {
	char *name;
	char **hostnames; /* normalised: lower case, no trailing dot */
	size_t nhostnames;
	char *cert, *key; /* absolute paths; NULL when the certificates come from a cert_dir */
	char *cert_dir;   /* this tenant's own cert_dir, or NULL (then the top-level one) */
	struct region_cfg *region;
	bool require_tls;
	bool skip_verification;
	char *src_file; /* where cert is set, for errors found when loading it */
	int cert_line;
	char *key_src_file; /* where key is set */
	int key_line;
	char *names_src_file; /* where hostnames is set, for names no certificate covers */
	int names_line;
	struct tenant_auth_cfg auth;
	/* The tenant in cfg->tenants: itself, also in the per-name copies certstore makes of it
	 * (so per-tenant tables can index by origin - cfg->tenants). */
	const struct tenant_cfg *origin;
	/* Sending limits (the tenant's limits group): per hour, by scope and kind; 0: none. */
	unsigned per_hour[QUOTA_NSCOPES][QUOTA_NKINDS];
};

struct listener_cfg {
	char *address;
	int port;
	enum tls_mode tls;
	char *hostname;
	struct tenant_cfg *default_tenant;
	bool allow_plaintext_auth;
	/* PROXY protocol (v1 or v2) from a load balancer: each connection must come from one of
	 * proxy_trusted and start with the header, within proxy_timeout_ms. */
	bool proxy_protocol;
	struct cidr *proxy_trusted;
	size_t nproxy_trusted;
	unsigned proxy_timeout_ms;
};

struct limits_cfg {
	uint64_t max_message_size;
	unsigned max_connections;
	unsigned max_connections_per_ip;
	/* Relay legs open for sessions not yet authenticated: each is a connection at the
	 * provider that anyone who completes a TLS handshake could otherwise make us hold. */
	unsigned max_unauth_legs;
	unsigned max_unauth_legs_per_ip;
	unsigned max_auth_failures;
	unsigned max_bad_commands;
	unsigned command_timeout_ms;
	unsigned data_timeout_ms;
	unsigned relay_timeout_ms;
	unsigned relay_data_timeout_ms;
	unsigned tls_timeout_ms;
	unsigned shutdown_timeout_ms;
};

/* The per-worker pool of authenticated relay connections for local-mode tenants. */
struct pool_cfg {
	unsigned max_idle;        /* idle connections kept per (relay, verify name, credential) */
	unsigned idle_timeout_ms; /* an idle connection older than this is closed */
	unsigned max_messages;    /* messages per connection before it is retired */
	unsigned max_age_ms;      /* a connection older than this is retired */
	unsigned min_idle;        /* kept open (pre-warmed) per key; 0: none */
};

/* acme: certificates obtained and renewed over ACME (HTTP-01, by lego); enabled false: none. */
enum config_acme_keys { CONFIG_ACME_ECDSA = 1, CONFIG_ACME_RSA = 2, CONFIG_ACME_BOTH = 3 };

struct acme_cfg {
	bool enabled;
	char *directory;   /* the ACME directory URL */
	char *email;       /* the account's contact, or NULL */
	char *ca_file;     /* trusted for the directory's TLS (a private ACME CA), or NULL */
	char *http_listen; /* where lego answers HTTP-01 challenges: "address:port" or ":port" */
	char *state_dir;   /* the account, lego's files and state.json */
	char *client;      /* the lego binary */
	unsigned renew_days;
	unsigned backoff_s; /* the first retry delay after a failure; doubled each time, up to a day */
	enum config_acme_keys key_type;
	char *src_file;
	int line;
};

/* Where the sending limits' counters live (limits.backend) and what a check does when they
 * cannot answer (limits.redis_failure). */
struct sending_cfg {
	bool redis;           /* false: the in-process counters, per instance */
	struct quota_url url; /* with redis: url.host is an address (a name is resolved at load) */
	bool fail_closed;     /* no answer: refuse with 451 4.3.0 (else accept) */
	unsigned timeout_ms;  /* a check unanswered this long counts as no answer */
};

enum config_log_format { CONFIG_LOG_JSON, CONFIG_LOG_TEXT, CONFIG_LOG_NONE };

/* Who the worker processes run as, and where the master writes its pid. */
struct process_cfg {
	char *user, *group; /* names as configured (or the defaults "nobody" and its group) */
	uid_t uid;
	gid_t gid;
	char *pid_file; /* absolute path, or NULL for none */
};

/* The admin HTTP listener (metrics and health); address NULL: none. */
struct admin_cfg {
	char *address; /* an IP literal, without brackets */
	int port;
	bool loopback;
	char *token; /* the bearer token requests must carry, or NULL */
};

struct config {
	char *path;
	enum log_level log_level;
	enum config_log_format log_format; /* of the session and message records */
	char *log_file;                    /* where they go; NULL: stdout */
	enum smtp_bare_policy bare_line_endings;
	unsigned workers; /* default: the number of online CPUs */
	struct process_cfg process;
	struct admin_cfg admin;
	struct listener_cfg *listeners;
	size_t nlisteners;
	struct region_cfg *regions;
	size_t nregions;
	struct tenant_cfg *tenants;
	size_t ntenants;
	struct limits_cfg limits;
	struct pool_cfg pool;
	struct sending_cfg sending;
	char *cert_dir; /* top level: certificates for tenants without cert/key lines, or NULL */
	char *cert_dir_src_file;
	int cert_dir_line;
	/* Session-ticket keys shared with other instances (certstore reads them), or NULL. */
	char *ticket_key_file;
	char *ticket_key_file_src_file;
	int ticket_key_file_line;
	struct acme_cfg acme;
};

/* Returns NULL and writes "file:line: message" into err on any error. */
struct config *config_load(const char *path, char *err, size_t errlen);
void config_free(struct config *cfg);
const char *config_tls_mode_name(enum tls_mode mode);
/* The cert_dir tenant t's certificates come from (its own, else the top level's), or NULL. */
const char *config_tenant_cert_dir(const struct config *cfg, const struct tenant_cfg *t);

#endif
