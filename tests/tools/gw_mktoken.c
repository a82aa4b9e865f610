/*
 * gw_mktoken: mints a signing key, its JWKS and signed JWTs for the integration tests, so
 * they exercise the gateway with real tokens without any Python crypto package. It reuses
 * the unit tests' minting code (tests/unit/test_authn_jwt_mint.c).
 *
 *   gw_mktoken --alg ES256|ES384|RS256|PS256|EdDSA --kid K --jwks FILE [--claims JSON]...
 *
 * Writes the JWKS (public key only) to FILE and prints one token per --claims, in order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_authn_jwt_mint.h"

static int alg_parse(const char *s, enum authn_alg *out)
{
	static const char *const names[] = {"ES256", "ES384", "RS256", "PS256", "EdDSA"};
	for (int i = 0; i < 5; i++)
		if (strcmp(s, names[i]) == 0) {
			*out = (enum authn_alg)i;
			return 0;
		}
	return -1;
}

int main(int argc, char **argv)
{
	enum authn_alg alg = AUTHN_ALG_ES256;
	const char *kid = "k1", *jwks = NULL;
	const char *claims[64];
	int n_claims = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--alg") == 0 && i + 1 < argc && alg_parse(argv[i + 1], &alg) == 0)
			i++;
		else if (strcmp(argv[i], "--kid") == 0 && i + 1 < argc)
			kid = argv[++i];
		else if (strcmp(argv[i], "--jwks") == 0 && i + 1 < argc)
			jwks = argv[++i];
		else if (strcmp(argv[i], "--claims") == 0 && i + 1 < argc && n_claims < 64)
			claims[n_claims++] = argv[++i];
		else {
			fprintf(stderr, "usage: gw_mktoken --alg ALG --kid K --jwks FILE [--claims JSON]...\n");
			return 2;
		}
	}
	if (!jwks)
		return 2;
	struct mint_key *k = mint_key_new(alg, kid);
	char jwk[4096];
	if (!k || mint_jwk(k, NULL, jwk, sizeof(jwk)) != 0) {
		fprintf(stderr, "gw_mktoken: key generation failed\n");
		return 1;
	}
	FILE *f = fopen(jwks, "w");
	if (!f || fprintf(f, "{\"keys\":[%s]}\n", jwk) < 0 || fclose(f) != 0) {
		perror(jwks);
		return 1;
	}
	char header[256];
	mint_header(k, header, sizeof(header));
	for (int i = 0; i < n_claims; i++) {
		char *tok = mint_token(k, header, claims[i]);
		if (!tok)
			return 1;
		printf("%s\n", tok);
		free(tok);
	}
	mint_key_free(k);
	return 0;
}
