/* passwd_cmd: `livery passwd`: reads a password from the terminal (no echo, asked twice) or from stdin and
 * prints its yescrypt hash, one line for a tenant's users_file. */
#ifndef LIVERY_PASSWD_CMD_H
#define LIVERY_PASSWD_CMD_H

/* argv[0] is "passwd". Exit status: 0, 1 (no randomness, hashing failed), 2 (usage, no or
 * mismatched password). */
int passwd_cmd_main(int argc, char **argv);

#endif
