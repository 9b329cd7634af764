/* certdir: finds the certificate + key pairs under a directory (certbot's live/<name>/ layout and flat
 * <name>.pem or <name>.crt + <name>.key pairs); file names only, no TLS and no I/O beyond listing. */
#ifndef LIVERY_CERTDIR_H
#define LIVERY_CERTDIR_H

#include <stdbool.h>
#include <stddef.h>

struct certdir_pair {
	char *cert; /* the chain file, leaf first */
	char *key;
};

struct certdir_list {
	struct certdir_pair *pairs;
	size_t n;
};

/* Lists the pairs under dir, in name order: <dir>/<name>.pem|.crt with <dir>/<name>.key, and
 * <sub>/fullchain.pem with <sub>/privkey.pem for every <sub> in dir and in dir/live. False
 * with a message in err when dir itself cannot be read. */
bool certdir_scan(const char *dir, struct certdir_list *out, char *err, size_t errlen);
void certdir_list_free(struct certdir_list *l);
/* The directories a watcher must watch to see every change certdir_scan would see: dir, and
 * for certbot's layout dir/live and each dir/live/<name>. A NULL-terminated array. */
char **certdir_watch_dirs(const char *dir);
void certdir_free_strv(char **v);

#endif
