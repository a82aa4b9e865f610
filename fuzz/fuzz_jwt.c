/*
 * fuzz_jwt: bearer token verification (authn_token_verify, authn_token_check with a
 * cache) and JWKS parsing (authn_keys_new). The key set is fixed: one issuer with an
 * ES256 JWK (kid "k1") and an HS256 secret (kid "h1").
 *
 * The first input byte picks the run's shape, the rest is the data:
 *   bits 0-1  0: the data is a compact token, verified as it is
 *             1: the data is "header JSON\npayload JSON": the harness encodes and signs
 *                it with the HS256 secret, so the claim checks behind the signature are
 *                reached too
 *             2: the data is a JWKS document given to authn_keys_new
 *             3: as 0, through authn_token_check and a small cache
 *   bit 2     require a certificate-bound token
 *   bit 3     no client certificate (cert NULL)
 *
 * Checked: a refused token leaves *out zeroed, an accepted one has the configured issuer,
 * an unexpired exp and, when required, the binding; a cached token hits the cache.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "authn.h"

#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond))                                                                       \
			__builtin_trap();                                                          \
	} while (0)

#define FUZZ_NOW    1700000000
#define FUZZ_ISSUER "https://issuer.test"

static const char jwks[] =
    "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"k1\",\"alg\":\"ES256\","
    "\"x\":\"dIQtGVrqyrcDlMR1dOWKL3rzuCpIauYU916yEURhGI0\","
    "\"y\":\"b9Lk4ipYxwcQGE6idt87Nn0f_KMTEQsC5FhwSGXpJSY\"}]}";
static const unsigned char secret[32] = "fuzz-hs256-secret-0123456789abc";

static struct authn_keys *keys;
static struct authn_cache *cache;
static struct authn_cert_id cert = {.cn = (char *)"alice"};

static void issuer_opts(struct authn_issuer_opts *is, const char *jwks_text, size_t len)
{
	memset(is, 0, sizeof(*is));
	is->issuer = FUZZ_ISSUER;
	is->audience = "gw";
	is->jwks_json = jwks_text;
	is->jwks_json_len = len;
	is->hmac_secret = secret;
	is->hmac_secret_len = sizeof(secret);
	is->hmac_kid = "h1";
	is->leeway = AUTHN_LEEWAY_DEFAULT;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct authn_issuer_opts is;
	struct authn_keys_opts o = {.issuers = &is, .n_issuers = 1};
	char err[256];
	issuer_opts(&is, jwks, strlen(jwks));
	/* The certificate hash a bound token must carry: SHA-256 of a fixed "DER". */
	EVP_Digest("fuzz-cert", 9, cert.sha256, NULL, EVP_sha256(), NULL);
	for (size_t i = 0; i < 32; i++)
		snprintf(cert.sha256_hex + 2 * i, 3, "%02x", cert.sha256[i]);
	if (authn_keys_new(&o, &keys, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_jwt: key set refused: %s\n", err);
		abort();
	}
	cache = authn_cache_new(16);
	if (!cache)
		abort();
	return 0;
}

static size_t b64url(const unsigned char *in, size_t len, char *out)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		if (i + 1 < len)
			out[o++] = tab[v >> 6 & 63];
		if (i + 2 < len)
			out[o++] = tab[v & 63];
	}
	return o;
}

/* "header\npayload" -> signed compact JWS in a new buffer (*len set); NULL if no '\n'. */
static char *sign_hs256(const char *data, size_t size, size_t *len)
{
	const char *nl = memchr(data, '\n', size);
	if (!nl)
		return NULL;
	size_t hl = (size_t)(nl - data), pl = size - hl - 1;
	char *tok = malloc(2 * size + 64);
	if (!tok)
		return NULL;
	size_t n = b64url((const unsigned char *)data, hl, tok);
	tok[n++] = '.';
	n += b64url((const unsigned char *)nl + 1, pl, tok + n);
	unsigned char mac[32];
	unsigned int ml = 0;
	HMAC(EVP_sha256(), secret, sizeof(secret), (unsigned char *)tok, n, mac, &ml);
	tok[n++] = '.';
	n += b64url(mac, ml, tok + n);
	*len = n;
	return tok;
}

static bool all_zero(const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

static void check_result(enum authn_status st, const struct authn_token_id *id, bool bound)
{
	FUZZ_CHECK(st < AUTHN_STATUS_MAX && authn_status_str(st) != NULL);
	if (st != AUTHN_OK) {
		FUZZ_CHECK(all_zero(id, sizeof(*id)));
		return;
	}
	FUZZ_CHECK(id->kind == AUTHN_CRED_JWT);
	FUZZ_CHECK(id->iss && strcmp(id->iss, FUZZ_ISSUER) == 0);
	FUZZ_CHECK(id->exp + AUTHN_LEEWAY_DEFAULT > FUZZ_NOW);
	if (bound)
		FUZZ_CHECK(id->cert_bound);
	for (size_t i = 0; i < id->n_scopes; i++)
		FUZZ_CHECK(id->scopes[i] != NULL);
}

/* Verifies a token; in cache mode an accepted token must then be answered by the cache. */
static void verify(const char *tok, size_t len, bool use_cache, bool bound,
                   const struct authn_cert_id *c)
{
	struct authn_token_id id;
	enum authn_status st;
	memset(&id, 0xa5, sizeof(id)); /* a refusal must zero it */
	if (use_cache)
		st = authn_token_check(keys, cache, tok, len, FUZZ_NOW, c, bound, &id);
	else
		st = authn_token_verify(keys, tok, len, FUZZ_NOW, c, bound, &id);
	check_result(st, &id, bound);
	/* A token past its exp (accepted within the leeway) is not cached by contract. */
	if (st == AUTHN_OK && use_cache && id.exp > FUZZ_NOW) {
		struct authn_token_id again;
		enum authn_status st2 = AUTHN_INTERNAL;
		memset(&again, 0, sizeof(again));
		bool hit =
		    authn_cache_lookup(cache, keys, tok, len, FUZZ_NOW, c, bound, &again, &st2);
		FUZZ_CHECK(hit && st2 == AUTHN_OK);
		FUZZ_CHECK((!id.sub && !again.sub) ||
		           (id.sub && again.sub && !strcmp(id.sub, again.sub)));
		authn_token_id_clear(&again);
	}
	authn_token_id_clear(&id);
}

static void jwks_parse(const char *data, size_t size)
{
	struct authn_issuer_opts is;
	struct authn_keys_opts o = {.issuers = &is, .n_issuers = 1};
	struct authn_keys *k = NULL;
	char err[256];
	issuer_opts(&is, data, size);
	if (authn_keys_new(&o, &k, err, sizeof(err)) == 0) {
		FUZZ_CHECK(k != NULL && authn_keys_has_issuers(k));
		authn_keys_free(k);
	} else {
		FUZZ_CHECK(err[0] != '\0');
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned mode = data[0] & 3;
	bool bound = data[0] & 4;
	const struct authn_cert_id *c = (data[0] & 8) ? NULL : &cert;
	const char *d = (const char *)data + 1;
	size_t n = size - 1;
	if (mode == 2) {
		jwks_parse(d, n);
		return 0;
	}
	if (mode == 1) {
		size_t tl = 0;
		char *tok = sign_hs256(d, n, &tl);
		if (tok)
			verify(tok, tl, false, bound, c);
		free(tok);
		return 0;
	}
	verify(d, n, mode == 3, bound, c);
	return 0;
}
