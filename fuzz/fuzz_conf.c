/*
 * fuzz_conf: conf_load_string() on arbitrary text (libconfig syntax, the schema walk,
 * every validator, the TLS/policy builds and the diagnostics). The contract checked:
 * a snapshot comes back exactly when no error was reported, every diagnostic has text,
 * and a snapshot's policy answers lookups on its own route prefixes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "fuzz_files.h"
#include "fuzz_snapshot.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (fuzz_files_init() != 0)
		return -1;
	fuzz_snapshot_warm_up(NULL);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	struct conf_diags d = {0};
	struct conf_snapshot *s = conf_load_string(text, "fuzz.conf", &d);
	fuzz_snapshot_check(s, &d);
	conf_snapshot_free(s);
	conf_diags_clear(&d);
	free(text);
	return 0;
}
