/*
 * fuzz_policy: the routes and policy part of a configuration. The input is appended to
 * a fixed header (one listener, two clusters), so nearly every run reaches the policy
 * build, and a policy that builds is then decided on: every route prefix and a few fixed
 * paths, for several principals, and rewritten (a rewritten path must still be in
 * normal form).
 *
 * Building TLS contexts dominates a load, so each input is first loaded with a header
 * whose files do not exist (fast: every error then lies in the header or in the input).
 * Only when all errors are the header's is it loaded again with the real files from
 * $GW_FUZZ_PKI, which yields the snapshot the decisions are checked on.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "fuzz_files.h"
#include "fuzz_snapshot.h"

/* %1$s is the directory prefix of every file; 9 lines whatever it is. */
static const char header_fmt[] =
    "workers = 1;\n"
    "listeners = ( { address = \"127.0.0.1:0\"; tls = { cert = \"%1$sserver.crt\";\n"
    "  key = \"%1$sserver.key\"; client_ca = \"%1$sclient-cas.pem\"; crl = [ \"%1$scrls.pem\" ]; "
    "}; } );\n"
    "clusters = (\n"
    "  { name = \"app\"; servers = ( { address = \"127.0.0.1:9001\"; name = \"backend.test\"; } "
    ");\n"
    "    tls = { ca = \"%1$sbackend-ca.crt\"; cert = \"%1$sgw-client.crt\"; key = "
    "\"%1$sgw-client.key\"; }; },\n"
    "  { name = \"b\"; servers = ( { address = \"127.0.0.1:9002\"; } );\n"
    "    tls = { ca = \"%1$sbackend-ca.crt\"; }; }\n"
    ");\n";
#define HEADER_LINES 9

static char header_real[2048], header_fast[2048];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	snprintf(header_real, sizeof(header_real), header_fmt, "");
	snprintf(header_fast, sizeof(header_fast), header_fmt, "/nonexistent-fuzz-pki/");
	if (fuzz_files_init() != 0)
		return -1;
	fuzz_snapshot_warm_up(header_real);
	return 0;
}

/* True when every error of d is on a header line ("policy.conf:N: ..." with N <= 9). */
static int errors_only_in_header(const struct conf_diags *d)
{
	for (size_t i = 0; i < d->n; i++) {
		if (!d->v[i].is_error)
			continue;
		const char *colon = strchr(d->v[i].text, ':');
		if (!colon || atoi(colon + 1) < 1 || atoi(colon + 1) > HEADER_LINES)
			return 0;
	}
	return 1;
}

/* Loads header + input; checks the contract; returns whether only the header erred. */
static int load_check(const char *header, const uint8_t *data, size_t size, char *text)
{
	size_t hl = strlen(header);
	memcpy(text, header, hl);
	memcpy(text + hl, data, size);
	text[hl + size] = '\0';
	struct conf_diags d = {0};
	struct conf_snapshot *s = conf_load_string(text, "policy.conf", &d);
	fuzz_snapshot_check(s, &d);
	int header_only = d.n_errors > 0 && errors_only_in_header(&d);
	conf_snapshot_free(s);
	conf_diags_clear(&d);
	return header_only;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(sizeof(header_fast) + size + 1);
	if (!text)
		return 0;
	if (load_check(header_fast, data, size, text))
		(void)load_check(header_real, data, size, text);
	free(text);
	return 0;
}
