/* Token minting shared by the authn test files (see test_authn_jwt_mint.c). */
#ifndef TEST_AUTHN_JWT_MINT_H
#define TEST_AUTHN_JWT_MINT_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>

#include "authn_int.h"

struct mint_key {
	enum authn_alg alg;
	const char *kid;
	EVP_PKEY *pkey; /* EC, RSA */
	unsigned char ed_pk[32], ed_sk[64];
	unsigned char secret[1024]; /* HS256 */
	size_t secret_len;
};

struct mint_key *mint_key_new(enum authn_alg alg, const char *kid);
void mint_key_free(struct mint_key *k);
size_t mint_b64(const void *in, size_t len, char *out, size_t cap);
/* Signs as alg with k (sig holds 1024 bytes); der: ECDSA in DER instead of r||s. */
int mint_sign_ex(const struct mint_key *k, enum authn_alg alg, const unsigned char *msg, size_t len,
                 unsigned char *sig, size_t *siglen, bool der);
/* A compact token (caller frees). */
char *mint_token_ex(const struct mint_key *k, enum authn_alg alg, const char *header,
                    const char *claims, bool der);
char *mint_token(const struct mint_key *k, const char *header, const char *claims);
int mint_jwk(const struct mint_key *k, const char *alg_member, char *out, size_t cap);
void mint_header(const struct mint_key *k, char *out, size_t cap);

#endif
