/* Unit tests for certdir: which certificate + key pairs a directory listing yields (certbot's
 * live/<name>/ layout with symlinks, flat pairs), and which directories a watcher needs. Each
 * test builds its tree in a fresh mkdtemp directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "certdir.h"

static char dir[64];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/livery-unit-certdir-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void touch(const char *rel)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("x\n", f);
	fclose(f);
}

static void mkdir_rel(const char *rel)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	assert_int_equal(mkdir(path, 0755), 0);
}

static void symlink_rel(const char *target, const char *rel)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	assert_int_equal(symlink(target, path), 0);
}

static void assert_pair(const struct certdir_pair *p, const char *cert, const char *key)
{
	char c[256], k[256];
	snprintf(c, sizeof(c), "%s/%s", dir, cert);
	snprintf(k, sizeof(k), "%s/%s", dir, key);
	assert_string_equal(p->cert, c);
	assert_string_equal(p->key, k);
}

static void test_flat_pairs(void **state)
{
	(void)state;
	touch("b.pem"), touch("b.key");
	touch("a.crt"), touch("a.key");
	touch("lonely.pem"); /* no key: not a pair */
	touch("orphan.key"); /* no certificate */
	touch(".hidden.pem"), touch(".hidden.key");
	touch("notes.txt");
	struct certdir_list l;
	char err[256];
	assert_true(certdir_scan(dir, &l, err, sizeof(err)));
	assert_int_equal(l.n, 2);
	assert_pair(&l.pairs[0], "a.crt", "a.key");
	assert_pair(&l.pairs[1], "b.pem", "b.key");
	certdir_list_free(&l);
}

static void test_certbot_layout(void **state)
{
	(void)state;
	mkdir_rel("archive"), mkdir_rel("archive/acme"), mkdir_rel("live"), mkdir_rel("live/acme");
	mkdir_rel("live/broken");
	touch("archive/acme/fullchain1.pem"), touch("archive/acme/privkey1.pem");
	symlink_rel("../../archive/acme/fullchain1.pem", "live/acme/fullchain.pem");
	symlink_rel("../../archive/acme/privkey1.pem", "live/acme/privkey.pem");
	symlink_rel("../../archive/gone/fullchain1.pem", "live/broken/fullchain.pem"); /* dangling */
	touch("live/broken/privkey.pem");
	touch("live/README");
	struct certdir_list l;
	char err[256];
	assert_true(certdir_scan(dir, &l, err, sizeof(err)));
	assert_int_equal(l.n, 1);
	assert_pair(&l.pairs[0], "live/acme/fullchain.pem", "live/acme/privkey.pem");
	certdir_list_free(&l);

	char **w = certdir_watch_dirs(dir);
	const char *want[] = {"", "/archive", "/live", "/live/acme", "/live/broken"};
	size_t n = 0;
	for (; w[n]; n++) {
		char path[256];
		assert_true(n < 5);
		snprintf(path, sizeof(path), "%s%s", dir, want[n]);
		assert_string_equal(w[n], path);
	}
	assert_int_equal(n, 5);
	certdir_free_strv(w);
}

static void test_missing_dir(void **state)
{
	(void)state;
	struct certdir_list l;
	char err[256], path[128];
	snprintf(path, sizeof(path), "%s/nope", dir);
	assert_false(certdir_scan(path, &l, err, sizeof(err)));
	assert_non_null(strstr(err, "cannot read directory"));
	assert_int_equal(l.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_flat_pairs, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_certbot_layout, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_missing_dir, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
