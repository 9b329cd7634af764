/* certdir: finds the certificate + key pairs under a directory (certbot's live/<name>/ layout and flat
 * <name>.pem or <name>.crt + <name>.key pairs); file names only, no TLS and no I/O beyond listing. */
#include "certdir.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

static bool is_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode); /* follows certbot's symlinks */
}

static bool is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void add_pair(struct certdir_list *l, char *cert, char *key)
{
	l->pairs = xrealloc(l->pairs, (l->n + 1) * sizeof(*l->pairs));
	l->pairs[l->n++] = (struct certdir_pair){cert, key};
}

static bool has_suffix(const char *name, const char *suffix)
{
	size_t n = strlen(name), s = strlen(suffix);
	return n > s && strcmp(name + n - s, suffix) == 0;
}

/* <name>.pem or <name>.crt whose <name>.key sits next to it. */
static void try_flat(struct certdir_list *l, const char *dir, const char *name)
{
	if (!has_suffix(name, ".pem") && !has_suffix(name, ".crt"))
		return;
	char *cert = xasprintf("%s/%s", dir, name);
	char *key = xasprintf("%s/%.*s.key", dir, (int)(strlen(name) - 4), name);
	if (is_file(cert) && is_file(key)) {
		add_pair(l, cert, key);
		return;
	}
	free(cert);
	free(key);
}

/* certbot's <sub>/fullchain.pem + <sub>/privkey.pem. */
static void try_certbot(struct certdir_list *l, const char *dir, const char *name)
{
	char *cert = xasprintf("%s/%s/fullchain.pem", dir, name);
	char *key = xasprintf("%s/%s/privkey.pem", dir, name);

	if (is_file(cert) && is_file(key)) {
		add_pair(l, cert, key);
		return;
	}
	free(cert);
	free(key);
}

static int not_hidden(const struct dirent *e)
{
	return e->d_name[0] != '.';
}

static bool scan_one(struct certdir_list *l, const char *dir, char *err, size_t errlen)
{
	struct dirent **ents;
	int n = scandir(dir, &ents, not_hidden, alphasort);

	if (n < 0) {
		snprintf(err, errlen, "cannot read directory %s: %s", dir, strerror(errno));
		return false;
	}
	for (int i = 0; i < n; i++) {
		try_flat(l, dir, ents[i]->d_name);
		try_certbot(l, dir, ents[i]->d_name);
		free(ents[i]);
	}
	free(ents);
	return true;
}

bool certdir_scan(const char *dir, struct certdir_list *out, char *err, size_t errlen)
{
	*out = (struct certdir_list){0};
	if (!scan_one(out, dir, err, errlen))
		return false;
	char *live = xasprintf("%s/live", dir);
	bool ok = !is_dir(live) || scan_one(out, live, err, errlen);
	free(live);
	if (!ok)
		certdir_list_free(out);
	return ok;
}

void certdir_list_free(struct certdir_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->pairs[i].cert);
		free(l->pairs[i].key);
	}
	free(l->pairs);
	*l = (struct certdir_list){0};
}

static void push(char ***v, size_t *n, char *s)
{
	*v = xrealloc(*v, (*n + 2) * sizeof(char *));
	(*v)[(*n)++] = s;
	(*v)[*n] = NULL;
}

/* Subdirectories of dir, each pushed as a full path. */
static void push_subdirs(char ***v, size_t *n, const char *dir)
{
	struct dirent **ents;
	int k = scandir(dir, &ents, not_hidden, alphasort);

	for (int i = 0; i < k; i++) {
		char *sub = xasprintf("%s/%s", dir, ents[i]->d_name);
		if (is_dir(sub))
			push(v, n, sub);
		else
			free(sub);
		free(ents[i]);
	}
	if (k >= 0)
		free(ents);
}

/* inotify is not recursive: certbot renews by writing archive/<name>/ and re-pointing the
 * symlinks in live/<name>/, so live/<name>/ is what changes. Flat subdirectories (any
 * <sub>/fullchain.pem) are watched too. */
char **certdir_watch_dirs(const char *dir)
{
	char **v = NULL;
	size_t n = 0;

	push(&v, &n, xstrdup(dir));
	push_subdirs(&v, &n, dir);
	char *live = xasprintf("%s/live", dir);
	if (is_dir(live))
		push_subdirs(&v, &n, live);
	free(live);
	return v;
}

void certdir_free_strv(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}
