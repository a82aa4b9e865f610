/*
 * Shared by the conf test files: one test PKI minted per run with tests/tools/mkpki.sh
 * into a temporary directory (removed at exit), and helpers to write and load
 * configurations there so that relative file names resolve against it.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

/* ---- used by test_conf.c and test_conf_bad.c ---- */
const char *conf_test_dir(void);
int conf_test_init(void);
int conf_test_write(const char *name, const char *text);
int conf_test_copy(const char *src, const char *name);
struct conf_snapshot *conf_test_load(const char *name, struct conf_diags *d, bool want_ok);
bool conf_test_has(const struct conf_diags *d, const char *needle);

static char pki_dir[] = "/tmp/gw-conf-XXXXXX";
static int pki_state; /* 0 = not tried, 1 = ready, -1 = failed */

static void pki_remove(void)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", pki_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "conf tests: could not remove %s\n", pki_dir);
}

const char *conf_test_dir(void)
{
	return pki_dir;
}

/* Suite init: mints the PKI on first use (and client-cas.pem, as the demo script does). */
int conf_test_init(void)
{
	const char *src = getenv("GW_SRC");
	char cmd[1024];

	if (pki_state)
		return pki_state > 0 ? 0 : -1;
	pki_state = -1;
	if (!src || !mkdtemp(pki_dir))
		return -1;
	atexit(pki_remove);
	snprintf(cmd, sizeof(cmd),
	         "bash '%s/tests/tools/mkpki.sh' '%s' >/dev/null && "
	         "cat '%s/ca.crt' '%s/inter.crt' >'%s/client-cas.pem'",
	         src, pki_dir, pki_dir, pki_dir, pki_dir);
	if (system(cmd) != 0)
		return -1;
	pki_state = 1;
	return 0;
}

int conf_test_write(const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", pki_dir, name);
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	int rc = fputs(text, f) < 0 ? -1 : 0;
	return fclose(f) == 0 ? rc : -1;
}

int conf_test_copy(const char *src, const char *name)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s/%s'", src, pki_dir, name);
	return system(cmd) == 0 ? 0 : -1;
}

struct conf_snapshot *conf_test_load(const char *name, struct conf_diags *d, bool want_ok)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", pki_dir, name);
	struct conf_snapshot *s = conf_load(path, d);
	if ((s != NULL) != want_ok) {
		fprintf(stderr, "\n%s: expected %s, got:\n", name, want_ok ? "success" : "failure");
		conf_diags_print(d, stderr);
	}
	return s;
}

bool conf_test_has(const struct conf_diags *d, const char *needle)
{
	for (size_t i = 0; i < d->n; i++) {
		if (strstr(d->v[i].text, needle))
			return true;
	}
	return false;
}
