/* Unit tests for config: defaults, path resolution and "file:line: message" errors. Every test
 * writes its files into a fresh mkdtemp directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <ftw.h>
#include <unistd.h>

#include "config.h"

struct ctx {
	char dir[64];
	char path[128]; /* the main file */
	char err[1024];
};

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));

	if (!c)
		return -1;
	strcpy(c->dir, "/tmp/livery-unit-config-XXXXXX");
	if (!mkdtemp(c->dir)) {
		free(c);
		return -1;
	}
	snprintf(c->path, sizeof(c->path), "%s/livery.conf", c->dir);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;

	nftw(c->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(c);
	return 0;
}

static void write_file(const struct ctx *c, const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", c->dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static struct config *load_ok(struct ctx *c, const char *text)
{
	struct config *cfg;

	write_file(c, "livery.conf", text);
	c->err[0] = '\0';
	cfg = config_load(c->path, c->err, sizeof(c->err));
	if (!cfg)
		fail_msg("config refused: %s", c->err);
	return cfg;
}

/* The error must be exactly "<dir>/<file>:<line>: " followed by a message containing needle. */
static void expect_err_in(struct ctx *c, const char *file, int line, const char *needle)
{
	char prefix[256];
	struct config *cfg;

	strcpy(c->err, "(untouched)");
	cfg = config_load(c->path, c->err, sizeof(c->err));
	if (cfg) {
		config_free(cfg);
		fail_msg("config accepted, want an error at %s:%d (%s)", file, line, needle);
	}
	snprintf(prefix, sizeof(prefix), "%s/%s:%d: ", c->dir, file, line);
	if (strncmp(c->err, prefix, strlen(prefix)) != 0)
		fail_msg("error \"%s\" does not start with \"%s\"", c->err, prefix);
	if (!strstr(c->err + strlen(prefix), needle))
		fail_msg("error \"%s\" does not mention \"%s\"", c->err, needle);
}

/* Like expect_err_in, but the file may be reported as given in the @include ("name") or as a
 * path in the configuration's directory ("<dir>/name"). */
static void expect_err_included(struct ctx *c, const char *name, int line, const char *needle)
{
	char bare[256], full[256];
	struct config *cfg;

	cfg = config_load(c->path, c->err, sizeof(c->err));
	if (cfg) {
		config_free(cfg);
		fail_msg("config accepted, want an error at %s:%d (%s)", name, line, needle);
	}
	snprintf(bare, sizeof(bare), "%s:%d: ", name, line);
	snprintf(full, sizeof(full), "%s/%s:%d: ", c->dir, name, line);
	const char *msg = NULL;
	if (strncmp(c->err, bare, strlen(bare)) == 0)
		msg = c->err + strlen(bare);
	else if (strncmp(c->err, full, strlen(full)) == 0)
		msg = c->err + strlen(full);
	else
		fail_msg("error \"%s\" does not start with \"%s\" or \"%s\"", c->err, bare, full);
	if (!strstr(msg, needle))
		fail_msg("error \"%s\" does not mention \"%s\"", c->err, needle);
}

static void expect_err(struct ctx *c, const char *text, int line, const char *needle)
{
	write_file(c, "livery.conf", text);
	expect_err_in(c, "livery.conf", line, needle);
}

/* One-line building blocks; each is exactly one line of the file. */
#define LISTENER_LINE                                                                                        \
	"listeners = ( { address = \"127.0.0.1\"; port = 2525; hostname = \"smtp.livery.test\";"             \
	" default_tenant = \"acme\"; } );\n"
#define TENANT_LINE                                                                                          \
	"tenants = ( { name = \"acme\"; hostnames = [ \"smtp.acme.test\" ]; cert = \"acme.pem\";"            \
	" key = \"acme.key\"; region = \"us\"; } );\n"

static const char minimal[] =
    /* 1 */ "listeners = (\n"
            /* 2 */ "  {\n"
            /* 3 */ "    address = \"127.0.0.1\";\n"
            /* 4 */ "    port = 2525;\n"
            /* 5 */ "    hostname = \"smtp.livery.test\";\n"
            /* 6 */ "    default_tenant = \"acme\";\n"
            /* 7 */ "  }\n"
            /* 8 */ ");\n"
            /* 9 */ "tenants = (\n"
            /* 10 */ "  {\n"
            /* 11 */ "    name = \"acme\";\n"
            /* 12 */ "    hostnames = [ \"smtp.acme.test\" ];\n"
            /* 13 */ "    cert = \"acme.pem\";\n"
            /* 14 */ "    key = \"acme.key\";\n"
            /* 15 */ "    region = \"us\";\n"
            /* 16 */ "  }\n"
            /* 17 */ ");\n";

static const struct region_cfg *region(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nregions; i++) {
		if (strcmp(cfg->regions[i].name, name) == 0)
			return &cfg->regions[i];
	}
	fail_msg("no region '%s'", name);
	return NULL;
}

static bool has_scrub(const struct region_cfg *r, const char *word)
{
	for (size_t i = 0; i < r->nscrub; i++) {
		if (strcmp(r->scrub[i], word) == 0)
			return true;
	}
	return false;
}

static void assert_path(const struct ctx *c, const char *got, const char *rel)
{
	char want[256];

	snprintf(want, sizeof(want), "%s/%s", c->dir, rel);
	assert_string_equal(got, want);
}

/* ---- good configurations ------------------------------------------------------------------ */

static void test_minimal_defaults(void **state)
{
	struct ctx *c = *state;
	struct config *cfg = load_ok(c, minimal);

	assert_string_equal(cfg->path, c->path);
	assert_int_equal(cfg->log_level, LOG_INFO);

	assert_int_equal(cfg->nlisteners, 1);
	const struct listener_cfg *l = &cfg->listeners[0];
	assert_string_equal(l->address, "127.0.0.1");
	assert_int_equal(l->port, 2525);
	assert_int_equal(l->tls, TLS_MODE_STARTTLS);
	assert_string_equal(l->hostname, "smtp.livery.test");
	assert_ptr_equal(l->default_tenant, &cfg->tenants[0]);
	assert_false(l->allow_plaintext_auth);

	assert_int_equal(cfg->nregions, 2);
	const struct region_cfg *us = region(cfg, "us"), *eu = region(cfg, "eu");
	assert_int_equal(us->nhosts, 1);
	assert_int_equal(eu->nhosts, 1);
	assert_string_equal(us->hosts[0].host, "smtp.mailgun.org");
	assert_string_equal(eu->hosts[0].host, "smtp.eu.mailgun.org");
	assert_string_equal(us->hosts[0].verify_name, "smtp.mailgun.org");
	assert_string_equal(eu->hosts[0].verify_name, "smtp.eu.mailgun.org");
	assert_string_equal(us->hosts[0].sni, "smtp.mailgun.org");
	assert_string_equal(eu->hosts[0].sni, "smtp.eu.mailgun.org");
	for (const struct region_cfg *r = us; r; r = r == us ? eu : NULL) {
		assert_int_equal(r->port, 587);
		assert_int_equal(r->tls, TLS_MODE_STARTTLS);
		assert_string_equal(r->ca_file, CONFIG_DEFAULT_CA_FILE);
		assert_string_equal(r->ehlo_name, "livery.localdomain");
		assert_int_equal(r->connect_timeout_ms, 10000);
		assert_true(has_scrub(r, "mailgun"));
		assert_true(has_scrub(r, r->hosts[0].host));
	}

	assert_int_equal(cfg->ntenants, 1);
	const struct tenant_cfg *t = &cfg->tenants[0];
	assert_string_equal(t->name, "acme");
	assert_int_equal(t->nhostnames, 1);
	assert_string_equal(t->hostnames[0], "smtp.acme.test");
	assert_path(c, t->cert, "acme.pem");
	assert_path(c, t->key, "acme.key");
	assert_ptr_equal(t->region, us);
	assert_true(t->require_tls);
	assert_false(t->skip_verification);
	assert_string_equal(t->src_file, c->path);
	assert_int_equal(t->cert_line, 13);
	/* A built-in region's errors point at the first tenant that uses it. */
	assert_string_equal(us->src_file, c->path);
	assert_int_equal(us->line, 15);

	assert_true(cfg->limits.max_message_size == 52428800);
	assert_int_equal(cfg->limits.max_connections, 4096);
	assert_int_equal(cfg->limits.max_connections_per_ip, 64);
	assert_int_equal(cfg->limits.max_auth_failures, 3);
	assert_int_equal(cfg->limits.max_bad_commands, 20);
	assert_int_equal(cfg->limits.command_timeout_ms, 300000);
	assert_int_equal(cfg->limits.data_timeout_ms, 180000);
	assert_int_equal(cfg->limits.relay_timeout_ms, 300000);
	assert_int_equal(cfg->limits.relay_data_timeout_ms, 600000);
	assert_int_equal(cfg->limits.tls_timeout_ms, 30000);
	assert_int_equal(cfg->bare_line_endings, SMTP_BARE_REJECT);

	assert_string_equal(config_tls_mode_name(TLS_MODE_STARTTLS), "starttls");
	assert_string_equal(config_tls_mode_name(TLS_MODE_IMPLICIT), "implicit");
	config_free(cfg);
}

static void test_relative_paths(void **state)
{
	struct ctx *c = *state;
	struct config *cfg =
	    load_ok(c, LISTENER_LINE
	            "regions = ( { name = \"r\"; host = \"relay.test\"; ca_file = \"cas/ca.pem\"; } );\n"
	            "tenants = (\n"
	            "  { name = \"acme\"; hostnames = [ \"a.test\" ]; cert = \"sub/acme.pem\";"
	            " key = \"/etc/livery/acme.key\"; region = \"r\"; },\n"
	            "  { name = \"b\"; hostnames = [ \"b.test\" ]; cert = \"../b.pem\"; key = \"b.key\";"
	            " region = \"eu\"; }\n"
	            ");\n");

	assert_path(c, cfg->tenants[0].cert, "sub/acme.pem");
	assert_string_equal(cfg->tenants[0].key, "/etc/livery/acme.key");
	assert_path(c, cfg->tenants[1].cert, "../b.pem");
	assert_path(c, cfg->tenants[1].key, "b.key");
	assert_path(c, region(cfg, "r")->ca_file, "cas/ca.pem");
	config_free(cfg);
}

static void test_everything_set(void **state)
{
	struct ctx *c = *state;
	struct config *cfg = load_ok(
	    c, "log_level = \"debug\";\n"
	       "bare_line_endings = \"normalize\";\n"
	       "listeners = (\n"
	       "  { address = \"::1\"; port = 465; tls = \"implicit\"; hostname = \"SMTP.Livery.Test.\";"
	       " default_tenant = \"globex\"; allow_plaintext_auth = true; },\n"
	       "  { address = \"0.0.0.0\"; port = 587; tls = \"starttls\"; hostname = \"smtp.livery.test\";"
	       " default_tenant = \"acme\"; }\n"
	       ");\n"
	       "regions = (\n"
	       "  { name = \"relay\"; host = \"127.0.0.1\"; port = 10025; tls = \"implicit\";"
	       " verify_name = \"smtp.relay.test\"; ehlo_name = \"me.test\"; connect_timeout = 3;"
	       " scrub = [ \"Provider\", \"prov\" ]; },\n"
	       "  { name = \"us\"; port = 465; tls = \"implicit\"; },\n"
	       "  { name = \"multi\"; hosts = [ \"a.relay.test\", \"10.0.0.1\", \"::1\" ];"
	       " verify_name = \"smtp.relay.test\"; },\n"
	       "  { name = \"own\"; hosts = [ \"a.relay.test\", \"b.relay.test\" ]; }\n"
	       ");\n"
	       "tenants = (\n"
	       "  { name = \"acme\"; hostnames = [ \"SMTP.Acme.Test.\", \"*.ACME.test\" ]; cert = \"a.pem\";"
	       " key = \"a.key\"; region = \"relay\"; require_tls = false; skip_verification = true; },\n"
	       "  { name = \"globex\"; hostnames = [ \"*.globex.test\", \"x.acme.test\" ]; cert = \"g.pem\";"
	       " key = \"g.key\"; region = \"us\"; }\n"
	       ");\n"
	       "limits = { max_message_size = 1048576; max_connections = 10; max_connections_per_ip = 2;"
	       " max_auth_failures = 1; max_bad_commands = 5; command_timeout = 60; data_timeout = 61;"
	       " relay_timeout = 120; relay_data_timeout = 121; tls_timeout = 5; };\n");

	assert_int_equal(cfg->log_level, LOG_DEBUG);
	assert_int_equal(cfg->bare_line_endings, SMTP_BARE_NORMALIZE);
	assert_int_equal(cfg->nlisteners, 2);
	assert_string_equal(cfg->listeners[0].address, "::1");
	assert_int_equal(cfg->listeners[0].port, 465);
	assert_int_equal(cfg->listeners[0].tls, TLS_MODE_IMPLICIT);
	assert_true(cfg->listeners[0].allow_plaintext_auth);
	assert_ptr_equal(cfg->listeners[0].default_tenant, &cfg->tenants[1]);
	assert_int_equal(cfg->listeners[1].tls, TLS_MODE_STARTTLS);
	assert_ptr_equal(cfg->listeners[1].default_tenant, &cfg->tenants[0]);

	assert_int_equal(cfg->nregions, 5);
	const struct region_cfg *r = region(cfg, "relay");
	assert_int_equal(r->nhosts, 1);
	assert_string_equal(r->hosts[0].host, "127.0.0.1");
	assert_string_equal(r->hosts[0].verify_name, "smtp.relay.test");
	assert_string_equal(r->hosts[0].sni, "smtp.relay.test"); /* host is an IP literal */
	assert_int_equal(r->port, 10025);
	assert_int_equal(r->tls, TLS_MODE_IMPLICIT);
	assert_string_equal(r->ehlo_name, "me.test");
	assert_int_equal(r->connect_timeout_ms, 3000);
	assert_true(has_scrub(r, "Provider"));
	assert_true(has_scrub(r, "prov"));
	assert_true(has_scrub(r, "127.0.0.1"));
	assert_true(has_scrub(r, "smtp.relay.test"));
	assert_false(has_scrub(r, "mailgun"));

	/* A redefined built-in keeps the defaults it does not override. */
	const struct region_cfg *us = region(cfg, "us");
	assert_int_equal(us->nhosts, 1);
	assert_string_equal(us->hosts[0].host, "smtp.mailgun.org");
	assert_string_equal(us->hosts[0].verify_name, "smtp.mailgun.org");
	assert_int_equal(us->port, 465);
	assert_int_equal(us->tls, TLS_MODE_IMPLICIT);
	assert_true(has_scrub(us, "mailgun"));
	assert_string_equal(region(cfg, "eu")->hosts[0].host, "smtp.eu.mailgun.org");

	/* Several hosts, in order, sharing one verify_name; SNI is the name unless an IP. */
	const struct region_cfg *m = region(cfg, "multi");
	assert_int_equal(m->nhosts, 3);
	assert_string_equal(m->hosts[0].host, "a.relay.test");
	assert_string_equal(m->hosts[1].host, "10.0.0.1");
	assert_string_equal(m->hosts[2].host, "::1");
	for (size_t i = 0; i < 3; i++)
		assert_string_equal(m->hosts[i].verify_name, "smtp.relay.test");
	assert_string_equal(m->hosts[0].sni, "a.relay.test");
	assert_string_equal(m->hosts[1].sni, "smtp.relay.test");
	assert_string_equal(m->hosts[2].sni, "smtp.relay.test");
	assert_int_equal(m->port, 587);
	assert_true(has_scrub(m, "a.relay.test"));
	assert_true(has_scrub(m, "10.0.0.1"));
	assert_true(has_scrub(m, "smtp.relay.test"));

	/* Without verify_name each host verifies as itself. */
	const struct region_cfg *o = region(cfg, "own");
	assert_int_equal(o->nhosts, 2);
	assert_string_equal(o->hosts[0].verify_name, "a.relay.test");
	assert_string_equal(o->hosts[1].verify_name, "b.relay.test");
	assert_string_equal(o->hosts[1].sni, "b.relay.test");
	assert_true(has_scrub(o, "b.relay.test"));

	const struct tenant_cfg *t = &cfg->tenants[0];
	assert_int_equal(t->nhostnames, 2);
	assert_string_equal(t->hostnames[0], "smtp.acme.test");
	assert_string_equal(t->hostnames[1], "*.acme.test");
	assert_ptr_equal(t->region, r);
	assert_false(t->require_tls);
	assert_true(t->skip_verification);
	assert_ptr_equal(cfg->tenants[1].region, us);
	assert_true(cfg->tenants[1].require_tls);

	assert_true(cfg->limits.max_message_size == 1048576);
	assert_int_equal(cfg->limits.max_connections, 10);
	assert_int_equal(cfg->limits.max_connections_per_ip, 2);
	assert_int_equal(cfg->limits.max_auth_failures, 1);
	assert_int_equal(cfg->limits.max_bad_commands, 5);
	assert_int_equal(cfg->limits.command_timeout_ms, 60000);
	assert_int_equal(cfg->limits.data_timeout_ms, 61000);
	assert_int_equal(cfg->limits.relay_timeout_ms, 120000);
	assert_int_equal(cfg->limits.relay_data_timeout_ms, 121000);
	assert_int_equal(cfg->limits.tls_timeout_ms, 5000);
	config_free(cfg);
}

/* A limits group that sets some keys leaves the others at their defaults. */
static void test_partial_limits(void **state)
{
	struct ctx *c = *state;
	struct config *cfg = load_ok(c, LISTENER_LINE TENANT_LINE "limits = { data_timeout = 7; };\n");

	assert_int_equal(cfg->limits.data_timeout_ms, 7000);
	assert_true(cfg->limits.max_message_size == 52428800);
	assert_int_equal(cfg->limits.max_connections, 4096);
	assert_int_equal(cfg->limits.command_timeout_ms, 300000);
	assert_int_equal(cfg->limits.relay_data_timeout_ms, 600000);
	config_free(cfg);
}

static void test_include_ok(void **state)
{
	struct ctx *c = *state;

	write_file(c, "tenants.conf", TENANT_LINE);
	struct config *cfg = load_ok(c, LISTENER_LINE "@include \"tenants.conf\"\n");
	assert_int_equal(cfg->ntenants, 1);
	assert_string_equal(cfg->tenants[0].name, "acme");
	assert_path(c, cfg->tenants[0].cert, "acme.pem");
	config_free(cfg);
}

/* ---- errors ------------------------------------------------------------------------------- */

static void test_err_missing_file(void **state)
{
	struct ctx *c = *state;

	expect_err_in(c, "livery.conf", 0, "cannot read");
}

static void test_err_syntax(void **state)
{
	struct ctx *c = *state;

	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	               /* 2 */ TENANT_LINE
	           /* 3 */ "log_level = ;\n",
	           3, "syntax error");
	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	           /* 2 */ "tenants = (\n"
	                   /* 3 */ "  { name = \"acme\";\n"
	                   /* 4 */ "    hostnames = [ \"a.test\" \n"
	                   /* 5 */ "    cert = \"a.pem\"; }\n"
	                   /* 6 */ ");\n",
	           5, "syntax error");
}

static void test_err_unknown_top_level_key(void **state)
{
	struct ctx *c = *state;

	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	           /* 2 */ "\n"
	                   /* 3 */ "# a comment\n"
	                   /* 4 */ "bogus = 1;\n"
	           /* 5 */ TENANT_LINE,
	           4, "unknown key 'bogus'");
}

static void test_err_unknown_key_in_tenant(void **state)
{
	struct ctx *c = *state;

	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	           /* 2 */ "tenants = (\n"
	                   /* 3 */ "  {\n"
	                   /* 4 */ "    name = \"acme\";\n"
	                   /* 5 */ "    hostnames = [ \"smtp.acme.test\" ];\n"
	                   /* 6 */ "    colour = \"red\";\n"
	                   /* 7 */ "    cert = \"acme.pem\"; key = \"acme.key\"; region = \"us\";\n"
	                   /* 8 */ "  }\n"
	                   /* 9 */ ");\n",
	           6, "unknown key 'colour' in tenant");
}

static void test_err_unknown_key_elsewhere(void **state)
{
	struct ctx *c = *state;

	expect_err(c,
	           /* 1 */
	           "listeners = ( {\n"
	           /* 2 */ "  address = \"127.0.0.1\"; port = 2525; hostname = \"h.test\";\n"
	           /* 3 */ "  default_tenant = \"acme\";\n"
	           /* 4 */ "  allow_plaintext = true;\n"
	           /* 5 */ "} );\n"
	           /* 6 */ TENANT_LINE,
	           4, "unknown key 'allow_plaintext' in listener");
	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	               /* 2 */ TENANT_LINE
	           /* 3 */ "regions = ( {\n"
	                   /* 4 */ "  name = \"r\"; host = \"relay.test\";\n"
	                   /* 5 */ "  timeout = 3;\n"
	                   /* 6 */ "} );\n",
	           5, "unknown key 'timeout' in region");
	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	               /* 2 */ TENANT_LINE
	           /* 3 */ "limits = {\n"
	                   /* 4 */ "  max_size = 10;\n"
	                   /* 5 */ "};\n",
	           4, "unknown key 'max_size' in limits");
}

static void test_err_port_wrong_type(void **state)
{
	struct ctx *c = *state;

	expect_err(c,
	           /* 1 */
	           "listeners = (\n"
	           /* 2 */ "  {\n"
	           /* 3 */ "    address = \"127.0.0.1\";\n"
	           /* 4 */ "    port = \"x\";\n"
	           /* 5 */ "    hostname = \"smtp.livery.test\";\n"
	           /* 6 */ "    default_tenant = \"acme\";\n"
	           /* 7 */ "  }\n"
	           /* 8 */ ");\n"
	           /* 9 */ TENANT_LINE,
	           4, "'port' must be an integer");
	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	               /* 2 */ TENANT_LINE
	           /* 3 */ "regions = ( { name = \"r\"; host = \"relay.test\";\n"
	                   /* 4 */ "  port = 25.5; } );\n",
	           4, "'port' must be an integer");
}

static void test_err_port_range(void **state)
{
	struct ctx *c = *state;

	expect_err(c,
	           /* 1 */
	           "listeners = ( { address = \"127.0.0.1\";\n"
	           /* 2 */ "  port = 70000;\n"
	           /* 3 */ "  hostname = \"h.test\"; default_tenant = \"acme\"; } );\n"
	           /* 4 */ TENANT_LINE,
	           2, "'port' must be between 1 and 65535");
	expect_err(c,
	           /* 1 */
	           "listeners = ( { address = \"127.0.0.1\";\n"
	           /* 2 */ "  port = 0;\n"
	           /* 3 */ "  hostname = \"h.test\"; default_tenant = \"acme\"; } );\n"
	           /* 4 */ TENANT_LINE,
	           2, "'port' must be between 1 and 65535");
	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	               /* 2 */ TENANT_LINE
	           /* 3 */ "regions = ( { name = \"r\"; host = \"relay.test\";\n"
	                   /* 4 */ "  port = -1; } );\n",
	           4, "'port' must be between 1 and 65535");
}

static void test_err_tls_mode(void **state)
{
	struct ctx *c = *state;

	expect_err(c,
	           /* 1 */
	           "listeners = ( { address = \"127.0.0.1\"; port = 2525;\n"
	           /* 2 */ "  hostname = \"h.test\"; default_tenant = \"acme\";\n"
	           /* 3 */ "  tls = \"bogus\"; } );\n"
	           /* 4 */ TENANT_LINE,
	           3, "'tls' must be \"starttls\" or \"implicit\"");
	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	               /* 2 */ TENANT_LINE
	           /* 3 */ "regions = ( { name = \"r\"; host = \"relay.test\";\n"
	                   /* 4 */ "  tls = \"STARTTLS\"; } );\n",
	           4, "'tls' must be \"starttls\" or \"implicit\"");
}

static void test_err_other_types(void **state)
{
	struct ctx *c = *state;

	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	           /* 2 */ "tenants = ( { name = \"acme\"; hostnames = [ \"a.test\" ]; cert = \"a.pem\";\n"
	                   /* 3 */ "  key = \"a.key\"; region = \"us\";\n"
	                   /* 4 */ "  require_tls = \"yes\"; } );\n",
	           4, "'require_tls' must be true or false");
	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	           /* 2 */ "tenants = ( { name = \"acme\";\n"
	                   /* 3 */ "  hostnames = \"a.test\";\n"
	                   /* 4 */ "  cert = \"a.pem\"; key = \"a.key\"; region = \"us\"; } );\n",
	           3, "'hostnames' must be a list of strings");
	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	           /* 2 */ "tenants = ( { name = \"acme\";\n"
	                   /* 3 */ "  hostnames = [ ];\n"
	                   /* 4 */ "  cert = \"a.pem\"; key = \"a.key\"; region = \"us\"; } );\n",
	           3, "'hostnames' must not be empty");
	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	               /* 2 */ TENANT_LINE
	           /* 3 */ "log_level = \"verbose\";\n",
	           3, "'log_level' must be");
	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	               /* 2 */ TENANT_LINE
	           /* 3 */ "limits = {\n"
	                   /* 4 */ "  command_timeout = 0;\n"
	                   /* 5 */ "};\n",
	           4, "'command_timeout' must be between 1 and 86400");
	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	           /* 2 */ "tenants = ( { name = \"acme\"; hostnames = [ \"a.test\" ]; key = \"a.key\"; "
	                   "region = \"us\";\n"
	                   /* 3 */ "  cert = \"\"; } );\n",
	           3, "'cert' must not be empty");
}

static void test_err_missing_required_key(void **state)
{
	struct ctx *c = *state;

	/* Reported at the group that lacks it. */
	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	           /* 2 */ "tenants = (\n"
	                   /* 3 */ "  {\n"
	                   /* 4 */ "    name = \"acme\";\n"
	                   /* 5 */ "    hostnames = [ \"smtp.acme.test\" ];\n"
	                   /* 6 */ "    key = \"acme.key\";\n"
	                   /* 7 */ "    region = \"us\";\n"
	                   /* 8 */ "  }\n"
	                   /* 9 */ ");\n",
	           3, "missing required key 'cert'");
	expect_err(c,
	           /* 1 */
	           "listeners = (\n"
	           /* 2 */ "  {\n"
	           /* 3 */ "    port = 2525;\n"
	           /* 4 */ "    hostname = \"h.test\"; default_tenant = \"acme\";\n"
	           /* 5 */ "  }\n"
	           /* 6 */ ");\n"
	           /* 7 */ TENANT_LINE,
	           2, "missing required key 'address'");
	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	               /* 2 */ TENANT_LINE
	           /* 3 */ "regions = (\n"
	                   /* 4 */ "  { name = \"custom\";\n"
	                   /* 5 */ "    port = 25; }\n"
	                   /* 6 */ ");\n",
	           4, "missing required key 'host'");
}

static void test_err_no_tenants_or_listeners(void **state)
{
	struct ctx *c = *state;

	expect_err(c, LISTENER_LINE, 0, "at least one tenant");
	expect_err(c, TENANT_LINE, 0, "at least one listener");
	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	           /* 2 */ "tenants = ( );\n",
	           2, "at least one tenant");
	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	           /* 2 */ "tenants = { name = \"acme\"; };\n",
	           2, "'tenants' must be a list of groups");
}

static void test_err_unknown_region(void **state)
{
	struct ctx *c = *state;

	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	           /* 2 */ "tenants = (\n"
	                   /* 3 */ "  {\n"
	                   /* 4 */ "    name = \"acme\";\n"
	                   /* 5 */ "    hostnames = [ \"smtp.acme.test\" ];\n"
	                   /* 6 */ "    cert = \"acme.pem\";\n"
	                   /* 7 */ "    key = \"acme.key\";\n"
	                   /* 8 */ "    region = \"mars\";\n"
	                   /* 9 */ "  }\n"
	                   /* 10 */ ");\n",
	           8, "unknown region 'mars'");
	/* Region names are case-sensitive. */
	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	           /* 2 */ "tenants = ( { name = \"acme\"; hostnames = [ \"a.test\" ]; cert = \"a.pem\"; key "
	                   "= \"a.key\";\n"
	                   /* 3 */ "  region = \"US\"; } );\n",
	           3, "unknown region 'US'");
}

static void test_err_duplicate_tenant(void **state)
{
	struct ctx *c = *state;

	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	           /* 2 */ "tenants = (\n"
	                   /* 3 */ "  { name = \"acme\"; hostnames = [ \"a.test\" ]; cert = \"a.pem\"; key = "
	                           "\"a.key\"; region = \"us\"; },\n"
	                   /* 4 */ "  {\n"
	                   /* 5 */ "    name = \"acme\";\n"
	                   /* 6 */ "    hostnames = [ \"b.test\" ]; cert = \"b.pem\"; key = \"b.key\"; "
	                           "region = \"eu\";\n"
	                   /* 7 */ "  }\n"
	                   /* 8 */ ");\n",
	           4, "tenant 'acme' is defined twice");
}

static void test_err_duplicate_region_and_listener(void **state)
{
	struct ctx *c = *state;

	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	               /* 2 */ TENANT_LINE
	           /* 3 */ "regions = (\n"
	                   /* 4 */ "  { name = \"r\"; host = \"a.test\"; },\n"
	                   /* 5 */ "  { name = \"r\"; host = \"b.test\"; }\n"
	                   /* 6 */ ");\n",
	           5, "region 'r' is defined twice");
	expect_err(c,
	           /* 1 */
	           "listeners = (\n"
	           /* 2 */ "  { address = \"127.0.0.1\"; port = 2525; hostname = \"h.test\"; default_tenant "
	                   "= \"acme\"; },\n"
	           /* 3 */ "  { address = \"127.0.0.1\"; port = 2525; hostname = \"h.test\"; default_tenant "
	                   "= \"acme\"; }\n"
	           /* 4 */ ");\n"
	           /* 5 */ TENANT_LINE,
	           3, "port 2525 is defined twice");
}

static void test_err_hostname_claimed_twice(void **state)
{
	struct ctx *c = *state;
	static const char *const variants[] = {"smtp.acme.test", "SMTP.Acme.TEST", "smtp.acme.test.",
	                                       "Smtp.ACME.test."};
	char text[1024];

	for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
		snprintf(text, sizeof(text),
		         /* 1 */
		         LISTENER_LINE
		         /* 2 */ "tenants = (\n"
		                 /* 3 */ "  { name = \"acme\"; hostnames = [ \"smtp.acme.test\" ]; cert = "
		                         "\"a.pem\";"
		                 " key = \"a.key\"; region = \"us\"; },\n"
		                 /* 4 */ "  {\n"
		                 /* 5 */ "    name = \"other\";\n"
		                 /* 6 */ "    hostnames = [ \"x.other.test\", \"%s\" ];\n"
		                 /* 7 */ "    cert = \"b.pem\"; key = \"b.key\"; region = \"eu\";\n"
		                 /* 8 */ "  }\n"
		                 /* 9 */ ");\n",
		         variants[i]);
		write_file(c, "livery.conf", text);
		expect_err_in(c, "livery.conf", 6, "'smtp.acme.test' is already claimed by tenant 'acme'");
	}
	/* Wildcards too. */
	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	           /* 2 */ "tenants = (\n"
	                   /* 3 */ "  { name = \"acme\"; hostnames = [ \"*.acme.test\" ]; cert = \"a.pem\"; "
	                           "key = \"a.key\"; region = \"us\"; },\n"
	                   /* 4 */ "  { name = \"b\"; cert = \"b.pem\"; key = \"b.key\"; region = \"eu\";\n"
	                   /* 5 */ "    hostnames = [ \"*.ACME.test.\" ]; }\n"
	                   /* 6 */ ");\n",
	           5, "already claimed by tenant 'acme'");
	/* And within one tenant. */
	expect_err(
	    c,
	    /* 1 */
	    LISTENER_LINE
	    /* 2 */ "tenants = ( { name = \"acme\"; cert = \"a.pem\"; key = \"a.key\"; region = \"us\";\n"
	            /* 3 */ "  hostnames = [ \"a.test\", \"b.test\", \"A.test.\" ]; } );\n",
	    3, "'a.test' is already claimed");
}

static void test_err_invalid_hostname(void **state)
{
	struct ctx *c = *state;

	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	           /* 2 */ "tenants = (\n"
	                   /* 3 */ "  {\n"
	                   /* 4 */ "    name = \"acme\";\n"
	                   /* 5 */ "    hostnames = [ \"smtp.acme.test\",\n"
	                   /* 6 */ "                  \"bad host.test\" ];\n"
	                   /* 7 */ "    cert = \"a.pem\"; key = \"a.key\"; region = \"us\";\n"
	                   /* 8 */ "  }\n"
	                   /* 9 */ ");\n",
	           5, "'bad host.test' is not a valid host name");
	expect_err(
	    c,
	    /* 1 */
	    LISTENER_LINE
	    /* 2 */ "tenants = ( { name = \"acme\"; cert = \"a.pem\"; key = \"a.key\"; region = \"us\";\n"
	            /* 3 */ "  hostnames = [ \"a.*.test\" ]; } );\n",
	    3, "'a.*.test' is not a valid host name");
}

static void test_err_listener_default_tenant(void **state)
{
	struct ctx *c = *state;

	expect_err(c,
	           /* 1 */
	           "listeners = (\n"
	           /* 2 */ "  {\n"
	           /* 3 */ "    address = \"127.0.0.1\";\n"
	           /* 4 */ "    port = 2525;\n"
	           /* 5 */ "    hostname = \"smtp.livery.test\";\n"
	           /* 6 */ "    default_tenant = \"nobody\";\n"
	           /* 7 */ "  }\n"
	           /* 8 */ ");\n"
	           /* 9 */ TENANT_LINE,
	           6, "unknown tenant 'nobody'");
}

static void test_err_listener_address(void **state)
{
	struct ctx *c = *state;
	static const char *const bad[] = {"localhost", "127.0.0.1:25", "1.2.3", "[::1]", "0.0.0.0 "};
	char text[1024];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text),
		         /* 1 */
		         TENANT_LINE
		         /* 2 */ "listeners = (\n"
		                 /* 3 */ "  {\n"
		                 /* 4 */ "    port = 2525; hostname = \"smtp.livery.test\"; default_tenant = "
		                         "\"acme\";\n"
		                 /* 5 */ "    address = \"%s\";\n"
		                 /* 6 */ "  }\n"
		                 /* 7 */ ");\n",
		         bad[i]);
		write_file(c, "livery.conf", text);
		expect_err_in(c, "livery.conf", 5, "'address' must be an IPv4 or IPv6 literal");
	}
}

static void test_err_listener_hostname(void **state)
{
	struct ctx *c = *state;

	expect_err(
	    c,
	    /* 1 */
	    TENANT_LINE
	    /* 2 */ "listeners = ( { address = \"127.0.0.1\"; port = 2525; default_tenant = \"acme\";\n"
	            /* 3 */ "  hostname = \"*.livery.test\"; } );\n",
	    3, "'hostname' is not a valid host name");
}

static void test_err_region_verify_name(void **state)
{
	struct ctx *c = *state;

	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	               /* 2 */ TENANT_LINE
	           /* 3 */ "regions = (\n"
	                   /* 4 */ "  {\n"
	                   /* 5 */ "    name = \"relay\";\n"
	                   /* 6 */ "    host = \"127.0.0.1\";\n"
	                   /* 7 */ "    verify_name = \"smtp relay\";\n"
	                   /* 8 */ "  }\n"
	                   /* 9 */ ");\n",
	           7, "'verify_name' is not a valid host name");
	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	               /* 2 */ TENANT_LINE
	           /* 3 */ "regions = ( { name = \"relay\"; host = \"relay.test\";\n"
	                   /* 4 */ "  verify_name = \"*.relay.test\"; } );\n",
	           4, "'verify_name' is not a valid host name");
}

static void test_err_region_hosts(void **state)
{
	struct ctx *c = *state;

	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	               /* 2 */ TENANT_LINE
	           /* 3 */ "regions = ( {\n"
	                   /* 4 */ "  name = \"r\";\n"
	                   /* 5 */ "  hosts = [ \"a.relay.test\" ];\n"
	                   /* 6 */ "  host = \"b.relay.test\";\n"
	                   /* 7 */ "} );\n",
	           6, "set either 'host' or 'hosts', not both");
	/* An IP literal has no name to verify: verify_name is then required (at the region). */
	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	               /* 2 */ TENANT_LINE
	           /* 3 */ "regions = (\n"
	                   /* 4 */ "  {\n"
	                   /* 5 */ "    name = \"r\";\n"
	                   /* 6 */ "    host = \"127.0.0.1\";\n"
	                   /* 7 */ "  }\n"
	                   /* 8 */ ");\n",
	           4, "'verify_name' is required when a relay host is an IP literal (127.0.0.1)");
	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	               /* 2 */ TENANT_LINE
	           /* 3 */ "regions = (\n"
	                   /* 4 */ "  { name = \"r\";\n"
	                   /* 5 */ "    hosts = [ \"a.relay.test\", \"::1\" ]; }\n"
	                   /* 6 */ ");\n",
	           4, "'verify_name' is required when a relay host is an IP literal (::1)");
	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	               /* 2 */ TENANT_LINE
	           /* 3 */ "regions = ( { name = \"r\";\n"
	                   /* 4 */ "  hosts = [ \"a.relay.test\", \"\" ]; } );\n",
	           4, "'hosts' must hold non-empty strings");
	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	               /* 2 */ TENANT_LINE
	           /* 3 */ "regions = ( { name = \"r\"; host = \"a.relay.test\";\n"
	                   /* 4 */ "  verify_name = \"\"; } );\n",
	           4, "'verify_name' must not be empty");
}

/* The relay host is checked like every other host name in the file, whether or not a
 * verify_name is given. */
static void test_err_region_host_invalid(void **state)
{
	struct ctx *c = *state;

	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	               /* 2 */ TENANT_LINE
	           /* 3 */ "regions = (\n"
	                   /* 4 */ "  {\n"
	                   /* 5 */ "    name = \"r\";\n"
	                   /* 6 */ "    host = \"bad host.test\";\n"
	                   /* 7 */ "  }\n"
	                   /* 8 */ ");\n",
	           6, "'bad host.test'");
	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	               /* 2 */ TENANT_LINE
	           /* 3 */ "regions = ( { name = \"r\"; verify_name = \"smtp.relay.test\";\n"
	                   /* 4 */ "  hosts = [ \"a.relay.test\", \"relay/2.test\" ]; } );\n",
	           4, "'relay/2.test'");
}

/* An implicit-TLS relay defaults to port 465; a listener's host name is kept normalised. */
static void test_implicit_region_port_and_hostname_case(void **state)
{
	struct ctx *c = *state;
	struct config *cfg = load_ok(
	    c, "listeners = ( { address = \"::1\"; port = 2525; hostname = \"SMTP.Livery.Test.\";"
	       " default_tenant = \"acme\"; } );\n"
	       "tenants = ( { name = \"acme\"; hostnames = [ \"smtp.acme.test\" ]; cert = \"acme.pem\";"
	       " key = \"acme.key\"; region = \"r\"; } );\n"
	       "regions = ( { name = \"r\"; host = \"relay.test\"; tls = \"implicit\"; } );\n");

	assert_int_equal(region(cfg, "r")->port, 465);
	assert_int_equal(region(cfg, "r")->tls, TLS_MODE_IMPLICIT);
	assert_string_equal(cfg->listeners[0].hostname, "smtp.livery.test");
	assert_string_equal(cfg->listeners[0].address, "::1");
	config_free(cfg);
}

/* The EHLO name goes on the relay leg verbatim: a CR LF in it would inject a command. */
static void test_err_region_ehlo_name(void **state)
{
	struct ctx *c = *state;
	static const char *const bad[] = {"me.test\\r\\nRSET", "", "[not an address]", "a b", "[1.2.3]"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[1024];
		snprintf(text, sizeof(text),
		         /* 1 */ LISTENER_LINE
		         /* 2 */ TENANT_LINE
		         /* 3 */ "regions = ( { name = \"r\"; host = \"relay.test\";\n"
		         /* 4 */ "  ehlo_name = \"%s\"; } );\n",
		         bad[i]);
		expect_err(c, text, 4, "'ehlo_name'");
	}
	static const char *const good[] = {"[192.0.2.1]", "[IPv6:2001:db8::1]", "Mail.Example.COM"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char text[1024];
		snprintf(text, sizeof(text),
		         LISTENER_LINE "tenants = ( { name = \"acme\"; hostnames = [ \"smtp.acme.test\" ];"
		                       " cert = \"acme.pem\"; key = \"acme.key\"; region = \"r\"; } );\n"
		                       "regions = ( { name = \"r\"; host = \"relay.test\"; ehlo_name = \"%s\"; } );\n",
		         good[i]);
		config_free(load_ok(c, text));
	}
}

static void test_err_bare_line_endings(void **state)
{
	struct ctx *c = *state;

	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	           /* 2 */ "bare_line_endings = \"strip\";\n"
	           /* 3 */ TENANT_LINE,
	           2, "'bare_line_endings' must be \"reject\" or \"normalize\"");
	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	               /* 2 */ TENANT_LINE
	           /* 3 */ "bare_line_endings = true;\n",
	           3, "'bare_line_endings' must be a string");
}

static void test_err_limits_counts(void **state)
{
	struct ctx *c = *state;

	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	               /* 2 */ TENANT_LINE
	           /* 3 */ "limits = {\n"
	                   /* 4 */ "  max_connections_per_ip = 0;\n"
	                   /* 5 */ "};\n",
	           4, "'max_connections_per_ip' must be between 1 and");
	expect_err(c,
	           /* 1 */
	           LISTENER_LINE
	               /* 2 */ TENANT_LINE
	           /* 3 */ "limits = {\n"
	                   /* 4 */ "  max_message_size = 100;\n"
	                   /* 5 */ "};\n",
	           4, "'max_message_size' must be between 1024 and");
}

static void test_err_in_included_file(void **state)
{
	struct ctx *c = *state;

	write_file(c, "tenants.conf",
	           /* 1 */
	           "# tenants, included\n"
	           /* 2 */ "tenants = (\n"
	           /* 3 */ "  {\n"
	           /* 4 */ "    name = \"acme\";\n"
	           /* 5 */ "    hostnames = [ \"smtp.acme.test\" ];\n"
	           /* 6 */ "    cert = \"a.pem\"; key = \"a.key\";\n"
	           /* 7 */ "    region = \"mars\";\n"
	           /* 8 */ "  }\n"
	           /* 9 */ ");\n");
	write_file(c, "livery.conf",
	           /* 1 */
	           LISTENER_LINE
	           /* 2 */ "@include \"tenants.conf\"\n");
	expect_err_included(c, "tenants.conf", 7, "unknown region 'mars'");

	write_file(c, "tenants.conf",
	           /* 1 */
	           "tenants = (\n"
	           /* 2 */ "  { name = \"acme\"; hostnames = [ \"smtp.acme.test\" ];\n"
	           /* 3 */ "    cert = \"a.pem\"; key = \"a.key\"; region = \"us\";\n"
	           /* 4 */ "    shape = \"round\"; }\n"
	           /* 5 */ ");\n");
	expect_err_included(c, "tenants.conf", 4, "unknown key 'shape' in tenant");

	/* An error in the main file after the include still names the main file. */
	write_file(c, "tenants.conf", TENANT_LINE);
	write_file(c, "livery.conf",
	           /* 1 */
	           "@include \"tenants.conf\"\n"
	           /* 2 */ "listeners = ( { address = \"127.0.0.1\"; port = 2525; hostname = \"h.test\";\n"
	           /* 3 */ "  default_tenant = \"nobody\"; } );\n");
	expect_err_in(c, "livery.conf", 3, "unknown tenant 'nobody'");
}

static void test_err_syntax_in_included_file(void **state)
{
	struct ctx *c = *state;

	write_file(c, "tenants.conf",
	           /* 1 */
	           "tenants = (\n"
	           /* 2 */ "  { name = \"acme\"; hostnames = [ \"smtp.acme.test\" ] = ; }\n"
	           /* 3 */ ");\n");
	write_file(c, "livery.conf",
	           /* 1 */
	           LISTENER_LINE
	           /* 2 */ "\n"
	                   /* 3 */ "@include \"tenants.conf\"\n");
	expect_err_included(c, "tenants.conf", 2, "syntax error");
}

/* The main file is reported by the path it was loaded from, so an included file must be too:
 * "tenants.conf:7:" alone names a file relative to the configuration's directory, which is
 * not where the operator (or an editor jumping to the error) is. */
static void test_err_included_file_full_path(void **state)
{
	struct ctx *c = *state;

	write_file(c, "tenants.conf",
	           /* 1 */
	           "tenants = ( { name = \"acme\"; hostnames = [ \"smtp.acme.test\" ];\n"
	           /* 2 */ "  cert = \"a.pem\"; key = \"a.key\"; region = \"mars\"; } );\n");
	write_file(c, "livery.conf", LISTENER_LINE "@include \"tenants.conf\"\n");
	expect_err_in(c, "tenants.conf", 2, "unknown region 'mars'");

	/* Where certstore reports certificate errors from. */
	write_file(c, "tenants.conf", TENANT_LINE);
	struct config *cfg = load_ok(c, LISTENER_LINE "@include \"tenants.conf\"\n");
	char want[256];
	snprintf(want, sizeof(want), "%s/tenants.conf", c->dir);
	assert_string_equal(cfg->tenants[0].src_file, want);
	config_free(cfg);
}

/* cert_dir: top level or per tenant, and then no cert/key lines are needed. */
static void test_cert_dir(void **state)
{
	struct ctx *c = *state;
	char want[256];

	struct config *cfg = load_ok(
	        c, "cert_dir = \"certs\";\n" LISTENER_LINE
	           "tenants = ( { name = \"acme\"; hostnames = [ \"smtp.acme.test\" ]; region = \"us\"; },\n"
	           "  { name = \"b\"; hostnames = [ \"b.test\" ]; cert_dir = \"/srv/b\"; region = \"us\"; } );\n");
	snprintf(want, sizeof(want), "%s/certs", c->dir);
	assert_string_equal(cfg->cert_dir, want);
	assert_null(cfg->tenants[0].cert);
	assert_null(cfg->tenants[0].cert_dir);
	assert_string_equal(config_tenant_cert_dir(cfg, &cfg->tenants[0]), want);
	assert_string_equal(config_tenant_cert_dir(cfg, &cfg->tenants[1]), "/srv/b");
	assert_int_equal(cfg->tenants[0].names_line, 3);
	assert_int_equal(cfg->cert_dir_line, 1);
	config_free(cfg);
}

static void test_err_cert_dir(void **state)
{
	struct ctx *c = *state;

	expect_err(c, LISTENER_LINE "tenants = ( { name = \"acme\"; hostnames = [ \"a.test\" ]; region = \"us\"; } );\n", 2,
	           "tenant 'acme' needs 'cert' and 'key', or a 'cert_dir'");
	expect_err(c,
	           LISTENER_LINE "tenants = ( { name = \"acme\"; hostnames = [ \"a.test\" ]; cert = \"a.pem\";"
	                         " region = \"us\"; } );\n",
	           2, "missing required key 'key'");
	expect_err(c, "cert_dir = 5;\n" LISTENER_LINE TENANT_LINE, 1, "'cert_dir' must be a string");
	expect_err(c,
	           LISTENER_LINE "tenants = ( { name = \"acme\"; hostnames = [ \"a.test\" ]; cert_dir = \"\";"
	                         " region = \"us\"; } );\n",
	           2, "'cert_dir' must not be empty");
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

/* The process options: workers as nobody/nogroup by default, one per CPU, no pid file. */
static void test_process_defaults(void **state)
{
	struct ctx *c = *state;
	struct config *cfg = load_ok(c, minimal);
	struct passwd *pw = getpwnam("nobody");

	assert_non_null(pw);
	assert_string_equal(cfg->process.user, "nobody");
	assert_int_equal(cfg->process.uid, pw->pw_uid);
	assert_int_equal(cfg->process.gid, pw->pw_gid);
	assert_null(cfg->process.pid_file);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	assert_int_equal(cfg->workers, cpus < 1 ? 1 : cpus > 64 ? 64 : cpus);
	config_free(cfg);
}

static void test_process_set(void **state)
{
	struct ctx *c = *state;
	char want[256];
	struct config *cfg =
	        load_ok(c, LISTENER_LINE TENANT_LINE "user = \"root\";\ngroup = \"daemon\";\n"
	                                             "pid_file = \"run/livery.pid\";\nworkers = 3;\n");

	assert_string_equal(cfg->process.user, "root");
	assert_int_equal(cfg->process.uid, 0);
	assert_string_equal(cfg->process.group, "daemon");
	assert_int_equal(cfg->process.gid, getgrnam("daemon")->gr_gid);
	snprintf(want, sizeof(want), "%s/run/livery.pid", c->dir);
	assert_string_equal(cfg->process.pid_file, want);
	assert_int_equal(cfg->workers, 3);
	config_free(cfg);
}

static void test_err_process(void **state)
{
	struct ctx *c = *state;

	expect_err(c, LISTENER_LINE TENANT_LINE "\nuser = \"no-such-user-livery\";\n", 4,
	           "no such user 'no-such-user-livery'");
	expect_err(c, LISTENER_LINE TENANT_LINE "group = \"no-such-group-livery\";\n", 3,
	           "no such group 'no-such-group-livery'");
	expect_err(c, LISTENER_LINE TENANT_LINE "pid_file = \"\";\n", 3, "'pid_file' must not be empty");
	expect_err(c, LISTENER_LINE TENANT_LINE "user = 0;\n", 3, "'user' must be a string");
	expect_err(c, LISTENER_LINE TENANT_LINE "workers = 0;\n", 3, "'workers' must be between 1 and 64");
}

/* ---- acme ---- */

static void test_acme(void **state)
{
	struct ctx *c = *state;
	char want[256];

	struct config *cfg = load_ok(c, "cert_dir = \"certs\";\n" LISTENER_LINE TENANT_LINE
	                                "acme = { directory = \"https://acme.test/dir\"; };\n");
	assert_true(cfg->acme.enabled);
	assert_string_equal(cfg->acme.directory, "https://acme.test/dir");
	assert_null(cfg->acme.email);
	assert_null(cfg->acme.ca_file);
	assert_string_equal(cfg->acme.http_listen, ":80");
	assert_string_equal(cfg->acme.client, "lego");
	assert_int_equal(cfg->acme.renew_days, 30);
	assert_int_equal(cfg->acme.backoff_s, 60);
	assert_int_equal(cfg->acme.key_type, CONFIG_ACME_ECDSA);
	snprintf(want, sizeof(want), "%s/certs/.acme", c->dir);
	assert_string_equal(cfg->acme.state_dir, want);
	config_free(cfg);
	cfg = load_ok(c, LISTENER_LINE TENANT_LINE
	              "acme = { directory = \"https://acme.test/dir\"; email = \"ops@livery.test\";"
	              " ca_file = \"ca.pem\"; challenge = \"http-01\"; http_listen = \"[::1]:8080\";"
	              " renew_days = 20; key_type = \"both\";"
	              " state_dir = \"st\"; backoff = 5; client = \"/usr/local/bin/lego\"; };\n");
	assert_string_equal(cfg->acme.email, "ops@livery.test");
	assert_path(c, cfg->acme.ca_file, "ca.pem");
	assert_path(c, cfg->acme.state_dir, "st");
	assert_string_equal(cfg->acme.http_listen, "[::1]:8080");
	assert_int_equal(cfg->acme.renew_days, 20);
	assert_int_equal(cfg->acme.backoff_s, 5);
	assert_int_equal(cfg->acme.key_type, CONFIG_ACME_BOTH);
	config_free(cfg);
	cfg = load_ok(c, LISTENER_LINE TENANT_LINE);
	assert_false(cfg->acme.enabled);
	config_free(cfg);
}

#define ACME_LINE(rest) LISTENER_LINE TENANT_LINE "acme = { directory = \"https://a.test/dir\";" rest " };\n"

static void test_err_acme(void **state)
{
	struct ctx *c = *state;

	expect_err(c, LISTENER_LINE TENANT_LINE "acme = { email = \"a@b.test\"; };\n", 3,
	           "missing required key 'directory'");
	expect_err(c, LISTENER_LINE TENANT_LINE "acme = { directory = \"http://a.test/dir\"; };\n", 3,
	           "'directory' must be an https:// URL");
	expect_err(c, ACME_LINE(" email = \"nobody\";"), 3, "'email' is not an e-mail address");
	expect_err(c, ACME_LINE(" challenge = \"dns-01\";"), 3, "'challenge' must be \"http-01\"");
	expect_err(c, ACME_LINE(" http_listen = \"example.test:80\";"), 3, "'http_listen' must be");
	expect_err(c, ACME_LINE(" http_listen = \":0\";"), 3, "'http_listen' must be");
	expect_err(c, ACME_LINE(" renew_days = 0;"), 3, "'renew_days' must be between 1 and 3650");
	expect_err(c, ACME_LINE(" key_type = \"dsa\";"), 3,
	           "'key_type' must be \"ecdsa\", \"rsa\" or \"both\"");
	expect_err(c, ACME_LINE(" dns = 1;"), 3, "unknown key 'dns' in acme");
	expect_err(c, LISTENER_LINE TENANT_LINE "acme = 5;\n", 3, "acme must be a group");
}

/* ---- sending limits ---------------------------------------------------------------------- */

#define LIMITED_TENANT_LINE                                                                                  \
	"tenants = ( { name = \"acme\"; hostnames = [ \"smtp.acme.test\" ]; cert = \"acme.pem\";"            \
	" key = \"acme.key\"; region = \"us\"; limits = { messages_per_hour = 10;"                         \
	" per_user_recipients_per_hour = 7; per_ip_messages_per_hour = 3; }; } );\n"

static void test_sending_limits(void **state)
{
	struct ctx *c = *state;
	struct config *cfg = load_ok(c, LISTENER_LINE LIMITED_TENANT_LINE);

	/* Defaults: in memory, fail open, 500 ms. */
	assert_false(cfg->sending.redis);
	assert_false(cfg->sending.fail_closed);
	assert_int_equal(cfg->sending.timeout_ms, 500);
	const struct tenant_cfg *t = &cfg->tenants[0];
	assert_int_equal(t->per_hour[QUOTA_TENANT][QUOTA_MESSAGES], 10);
	assert_int_equal(t->per_hour[QUOTA_TENANT][QUOTA_RECIPIENTS], 0);
	assert_int_equal(t->per_hour[QUOTA_USER][QUOTA_RECIPIENTS], 7);
	assert_int_equal(t->per_hour[QUOTA_IP][QUOTA_MESSAGES], 3);
	config_free(cfg);

	cfg = load_ok(c, LISTENER_LINE TENANT_LINE
	              "limits = { max_connections = 9; backend = \"redis://:pw@localhost:6390/4\";"
	              " redis_failure = \"closed\"; redis_timeout_ms = 250; };\n");
	assert_true(cfg->sending.redis);
	assert_true(cfg->sending.fail_closed);
	assert_int_equal(cfg->sending.timeout_ms, 250);
	/* The name is resolved at load: the workers never resolve on their loops. */
	assert_true(strcmp(cfg->sending.url.host, "127.0.0.1") == 0 || strcmp(cfg->sending.url.host, "::1") == 0);
	assert_int_equal(cfg->sending.url.port, 6390);
	assert_int_equal(cfg->sending.url.db, 4);
	assert_string_equal(cfg->sending.url.password, "pw");
	assert_int_equal(cfg->limits.max_connections, 9);
	config_free(cfg);
}

static void test_err_sending_limits(void **state)
{
	struct ctx *c = *state;

	expect_err(c, LISTENER_LINE TENANT_LINE "limits = {\n backend = \"redis://:hunter2@10.0.0.1:99999/0\";\n};\n", 4,
	           "'backend' must be \"memory\" or \"redis://host:port/db\": the port");
	assert_null(strstr(c->err, "hunter2"));
	expect_err(c, LISTENER_LINE TENANT_LINE "limits = {\n backend = \"mysql://db\";\n};\n", 4, "'backend'");
	expect_err(c, LISTENER_LINE TENANT_LINE "limits = {\n backend = \"redis://no-such-host.invalid\";\n};\n", 4,
	           "cannot resolve the Redis host 'no-such-host.invalid'");
	expect_err(c, LISTENER_LINE TENANT_LINE "limits = {\n redis_failure = \"maybe\";\n};\n", 4,
	           "'redis_failure' must be \"open\" or \"closed\"");
	expect_err(c, LISTENER_LINE TENANT_LINE "limits = {\n redis_timeout_ms = 5;\n};\n", 4,
	           "'redis_timeout_ms' must be between 10 and 60000");
	expect_err(c,
	           LISTENER_LINE "tenants = ( { name = \"acme\"; hostnames = [ \"smtp.acme.test\" ]; cert = \"acme.pem\";"
	                         " key = \"acme.key\"; region = \"us\";\n limits = {\n  messages_per_hour = 0;\n }; } );\n",
	           4, "'messages_per_hour' must be between 1 and 16777215");
	expect_err(c,
	           LISTENER_LINE "tenants = ( { name = \"acme\"; hostnames = [ \"smtp.acme.test\" ]; cert = \"acme.pem\";"
	                         " key = \"acme.key\"; region = \"us\";\n limits = {\n  per_user_mails_per_hour = 3;\n }; } );\n",
	           4, "unknown key 'per_user_mails_per_hour' in a tenant's limits");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_minimal_defaults),
	    T(test_sending_limits),
	    T(test_err_sending_limits),
	    T(test_relative_paths),
	    T(test_everything_set),
	    T(test_partial_limits),
	    T(test_include_ok),
	    T(test_err_missing_file),
	    T(test_err_syntax),
	    T(test_err_unknown_top_level_key),
	    T(test_err_unknown_key_in_tenant),
	    T(test_err_unknown_key_elsewhere),
	    T(test_err_port_wrong_type),
	    T(test_err_port_range),
	    T(test_err_tls_mode),
	    T(test_err_other_types),
	    T(test_err_missing_required_key),
	    T(test_err_no_tenants_or_listeners),
	    T(test_err_unknown_region),
	    T(test_err_duplicate_tenant),
	    T(test_err_duplicate_region_and_listener),
	    T(test_err_hostname_claimed_twice),
	    T(test_err_invalid_hostname),
	    T(test_err_listener_default_tenant),
	    T(test_err_listener_address),
	    T(test_err_listener_hostname),
	    T(test_err_region_verify_name),
	    T(test_err_region_hosts),
	    T(test_err_region_host_invalid),
	    T(test_implicit_region_port_and_hostname_case),
	    T(test_err_region_ehlo_name),
	    T(test_err_bare_line_endings),
	    T(test_err_limits_counts),
	    T(test_err_in_included_file),
	    T(test_err_syntax_in_included_file),
	    T(test_err_included_file_full_path),
	    T(test_process_defaults),
	    T(test_process_set),
	    T(test_err_process),
	    T(test_cert_dir),
	    T(test_err_cert_dir),
	    T(test_acme),
	    T(test_err_acme),
	};
	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
