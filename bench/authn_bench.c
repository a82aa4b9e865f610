/*
 * authn_bench: token verifications per second for ES256, RS256 and EdDSA, through
 * authn_token_verify (every call verifies the signature) and through authn_token_check
 * with a worker cache (one verification, then hits), printed beside `openssl speed`'s
 * verify figures for the same algorithms so the overhead of our parsing shows.
 *
 *     authn_bench [-t seconds per measurement] [-n]   (-n: skip openssl speed)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "authn_int.h"
#include "test_authn_jwt_mint.h"

#define ISS "https://bench.example"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A key set holding only k, and a token signed by it; 0 or -1. */
static int setup(const struct mint_key *k, struct authn_keys **keys, char **token)
{
	char jwk[4096], jwks[4200], hdr[256], err[256];
	const char *claims = "{\"iss\":\"" ISS "\",\"aud\":\"gw\",\"sub\":\"bench\","
	                     "\"exp\":4000000000,\"scope\":\"read write\"}";

	if (mint_jwk(k, NULL, jwk, sizeof(jwk)) < 0)
		return -1;
	snprintf(jwks, sizeof(jwks), "{\"keys\":[%s]}", jwk);
	struct authn_issuer_opts is = {.issuer = ISS,
	                               .audience = "gw",
	                               .jwks_json = jwks,
	                               .jwks_json_len = strlen(jwks),
	                               .leeway = 60};
	struct authn_keys_opts o = {.issuers = &is, .n_issuers = 1};
	if (authn_keys_new(&o, keys, err, sizeof(err)) < 0) {
		fprintf(stderr, "authn_keys_new: %s\n", err);
		return -1;
	}
	mint_header(k, hdr, sizeof(hdr));
	*token = mint_token(k, hdr, claims);
	return *token ? 0 : -1;
}

/* Calls per second of one verification path over about secs seconds; -1 on a refusal. */
static double rate(const struct authn_keys *keys, struct authn_cache *cache, const char *t,
                   double secs)
{
	size_t len = strlen(t);
	unsigned long n = 0;
	double start = now_s(), el;

	do {
		for (int i = 0; i < 64; i++, n++) {
			struct authn_token_id id;
			enum authn_status st =
			    authn_token_check(keys, cache, t, len, 1700000000, NULL, false, &id);
			authn_token_id_clear(&id);
			if (st != AUTHN_OK) {
				fprintf(stderr, "refused: %s\n", authn_status_str(st));
				return -1;
			}
		}
		el = now_s() - start;
	} while (el < secs);
	return (double)n / el;
}

/* Prints the verify lines of `openssl speed` for the same algorithms. */
static void openssl_speed(void)
{
	char line[512];
	FILE *p = popen("openssl speed -seconds 1 ecdsap256 rsa2048 ed25519 2>/dev/null", "r");

	if (!p) {
		printf("\n(openssl speed not available)\n");
		return;
	}
	printf("\nopenssl speed -seconds 1 ecdsap256 rsa2048 ed25519 (raw primitive):\n");
	while (fgets(line, sizeof(line), p)) {
		if (strstr(line, "verify/s") || strstr(line, " bits "))
			fputs(line, stdout);
	}
	if (pclose(p) != 0)
		printf("(openssl speed failed or is not installed)\n");
}

int main(int argc, char **argv)
{
	static const struct {
		enum authn_alg alg;
		const char *name;
	} algs[] = {{AUTHN_ALG_ES256, "ES256"},
	            {AUTHN_ALG_RS256, "RS256 (2048)"},
	            {AUTHN_ALG_EDDSA, "EdDSA (Ed25519)"}};
	double secs = 1.0;
	bool speed = true;
	int opt, rc = 0;

	while ((opt = getopt(argc, argv, "t:n")) != -1) {
		if (opt == 't')
			secs = atof(optarg);
		else if (opt == 'n')
			speed = false;
		else {
			fprintf(stderr, "usage: %s [-t seconds] [-n]\n", argv[0]);
			return 2;
		}
	}
	printf("%-16s %16s %16s %10s\n", "algorithm", "uncached /s", "cached /s", "speed-up");
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		struct mint_key *k = mint_key_new(algs[i].alg, "bench");
		struct authn_keys *keys = NULL;
		struct authn_cache *cache = authn_cache_new(0);
		char *t = NULL;
		if (!k || !cache || setup(k, &keys, &t) < 0) {
			fprintf(stderr, "%s: setup failed\n", algs[i].name);
			rc = 1;
		} else {
			double u = rate(keys, NULL, t, secs), c = rate(keys, cache, t, secs);
			printf("%-16s %16.0f %16.0f %9.0fx\n", algs[i].name, u, c,
			       u > 0 ? c / u : 0);
			rc |= u < 0 || c < 0;
		}
		free(t);
		authn_cache_free(cache);
		authn_keys_free(keys);
		mint_key_free(k);
	}
	if (speed)
		openssl_speed();
	return rc;
}
