/* passwd_cmd: `livery passwd`: reads a password from the terminal (no echo, asked twice) or from stdin and
 * prints its yescrypt hash, one line for a tenant's users_file. */
#include "passwd_cmd.h"

#include <crypt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "sasl.h"

static const char usage[] =
        "Usage: livery passwd [USER]\n"
        "\n"
        "Reads a password (from the terminal without echo, asked twice; or the first line of\n"
        "stdin) and prints its yescrypt hash; with USER, as the line \"USER:HASH\" for a tenant's\n"
        "users_file. The password is never printed or logged.\n";

/* One line without its end; false at EOF, or when it is empty or longer than livery accepts. */
static bool read_line(FILE *in, char *buf, size_t cap)
{
	if (!fgets(buf, (int)cap, in))
		return false;
	size_t n = strcspn(buf, "\r\n");
	bool whole = buf[n] != '\0' || feof(in);
	buf[n] = '\0';
	return whole && n > 0 && n <= SASL_FIELD_MAX;
}

/* From a terminal: asked twice, without echo. */
static bool read_tty(char *pass, size_t cap)
{
	char again[SASL_FIELD_MAX + 2];
	struct termios old, quiet;

	if (tcgetattr(STDIN_FILENO, &old) != 0)
		return false;
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	fputs("Password: ", stderr);
	bool ok = read_line(stdin, pass, cap);
	fputs("\nAgain: ", stderr);
	ok = read_line(stdin, again, sizeof(again)) && ok;
	fputs("\n", stderr);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	if (ok && strcmp(pass, again) != 0) {
		fputs("livery passwd: the passwords differ\n", stderr);
		ok = false;
	}
	explicit_bzero(again, sizeof(again));
	return ok;
}

static int hash_and_print(const char *user, const char *pass)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data cd;

	memset(&cd, 0, sizeof(cd));
	/* yescrypt at libxcrypt's default cost; the salt from the system's randomness. */
	if (!crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof(salt))) {
		perror("livery passwd: crypt_gensalt");
		return 1;
	}
	const char *hash = crypt_rn(pass, salt, &cd, (int)sizeof(cd));
	if (!hash || hash[0] == '*') {
		perror("livery passwd: crypt");
		return 1;
	}
	printf("%s%s%s\n", user ? user : "", user ? ":" : "", hash);
	explicit_bzero(&cd, sizeof(cd));
	return 0;
}

int passwd_cmd_main(int argc, char **argv)
{
	char pass[SASL_FIELD_MAX + 2];
	const char *user = argc > 1 ? argv[1] : NULL;

	if (user && (strcmp(user, "-h") == 0 || strcmp(user, "--help") == 0)) {
		fputs(usage, stdout);
		return 0;
	}
	if (argc > 2 || (user && (user[0] == '-' || user[0] == '\0' || strpbrk(user, ": \t\r\n")))) {
		fputs(usage, stderr);
		return 2;
	}
	bool ok = isatty(STDIN_FILENO) ? read_tty(pass, sizeof(pass)) : read_line(stdin, pass, sizeof(pass));
	if (!ok) {
		fprintf(stderr, "livery passwd: no password read (one line, 1 to %d octets)\n",
		        SASL_FIELD_MAX);
		explicit_bzero(pass, sizeof(pass));
		return 2;
	}
	int rc = hash_and_print(user, pass);
	explicit_bzero(pass, sizeof(pass));
	return rc;
}
