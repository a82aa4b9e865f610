/*
 * gatewayctl apikey: the API key lifecycle. The gateway stores only keyed BLAKE2b hashes,
 * so the plaintext key exists once, on the operator's terminal, and never in a file.
 *
 *   gatewayctl apikey hash-key --out FILE          new 32-byte hashing key (0600)
 *   gatewayctl apikey new --hash-key FILE --subject S [--scopes a,b] --file KEYS
 *                                                  prints a new key, appends its hash line
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "authn.h"

static int usage(void)
{
	fprintf(stderr, "usage: gatewayctl apikey hash-key --out FILE\n"
	                "       gatewayctl apikey new --hash-key FILE --subject S [--scopes a,b] "
	                "--file KEYS\n");
	return 2;
}

/* Writes the hashing key with mode 0600, refusing to overwrite an existing one. */
static int cmd_hash_key(const char *out)
{
	unsigned char key[AUTHN_APIKEY_HASH_KEY_BYTES];
	char hex[AUTHN_APIKEY_HEX_LEN + 1];
	if (authn_apikey_hash_key_generate(key, hex) != 0)
		return 1;
	sodium_memzero(key, sizeof(key));
	int fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		perror(out);
		return 1;
	}
	size_t len = strlen(hex);
	hex[len++] = '\n';
	int rc = write(fd, hex, len) == (ssize_t)len && fsync(fd) == 0 ? 0 : 1;
	sodium_memzero(hex, sizeof(hex));
	close(fd);
	return rc;
}

/* Subjects and scopes are written into a whitespace-separated file: keep them tokens. */
static int token_ok(const char *s, const char *extra)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!(*s > 0x20 && *s < 0x7f) || strchr(extra, *s))
			return 0;
	return 1;
}

static int cmd_new(const char *hash_key_file, const char *subject, const char *scopes,
                   const char *keys_file)
{
	unsigned char hk[AUTHN_APIKEY_HASH_KEY_BYTES];
	char err[256], key[AUTHN_APIKEY_LEN + 1], hash[AUTHN_APIKEY_HEX_LEN + 1];
	if (!token_ok(subject, "") || (scopes && !token_ok(scopes, ""))) {
		fprintf(stderr, "apikey: subject and scopes must be printable without spaces\n");
		return 2;
	}
	if (authn_apikey_hash_key_load(hash_key_file, hk, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	int rc = authn_apikey_generate(hk, key, hash);
	sodium_memzero(hk, sizeof(hk));
	if (rc != 0)
		return 1;
	FILE *f = fopen(keys_file, "a");
	if (!f ||
	    fprintf(f, "%s %s%s%s\n", hash, subject, scopes ? " " : "", scopes ? scopes : "") < 0 ||
	    fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0) {
		perror(keys_file);
		sodium_memzero(key, sizeof(key));
		return 1;
	}
	/* The only place the key ever appears. */
	printf("%s\n", key);
	sodium_memzero(key, sizeof(key));
	return 0;
}

int ctl_apikey_main(int argc, char **argv)
{
	const char *out = NULL, *hk = NULL, *subject = NULL, *scopes = NULL, *file = NULL;
	if (argc < 2 || sodium_init() < 0)
		return usage();
	for (int i = 2; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--out") == 0)
			out = argv[i + 1];
		else if (strcmp(argv[i], "--hash-key") == 0)
			hk = argv[i + 1];
		else if (strcmp(argv[i], "--subject") == 0)
			subject = argv[i + 1];
		else if (strcmp(argv[i], "--scopes") == 0)
			scopes = argv[i + 1];
		else if (strcmp(argv[i], "--file") == 0)
			file = argv[i + 1];
		else
			return usage();
	}
	if (strcmp(argv[1], "hash-key") == 0 && out)
		return cmd_hash_key(out);
	if (strcmp(argv[1], "new") == 0 && hk && subject && file)
		return cmd_new(hk, subject, scopes, file);
	return usage();
}
