/*
 * JWS compact serialization (RFC 7515): split, decode, check the protected header, select
 * the key and verify the signature. The payload is not interpreted here, so the Wycheproof
 * JWS vectors (whose payloads are not JWT claims) run through exactly this code.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "authn_int.h"

/* Finds the two dots of "h.p.s"; -1 unless there are exactly two. */
static int jws_split(const char *t, size_t len, size_t *d1, size_t *d2)
{
	int dots = 0;

	for (size_t i = 0; i < len; i++) {
		if (t[i] != '.')
			continue;
		if (++dots == 1)
			*d1 = i;
		else if (dots == 2)
			*d2 = i;
		else
			return -1;
	}
	return dots == 2 ? 0 : -1;
}

/*
 * The protected header: a JSON object without duplicate keys, an "alg" we verify (never
 * "none", in any spelling), no "crit" at all (we implement no extension, and RFC 7515
 * 4.1.11 requires refusing what is not understood), and "kid", if any, a string. Keys
 * the header might carry itself ("jwk", "jku", "x5c", "x5u") are never used.
 */
static enum authn_status jws_header(const char *b64, size_t len, struct authn_jws *j)
{
	unsigned char *raw = NULL;
	size_t n = 0;
	enum authn_status st = AUTHN_MALFORMED;

	if (authn_b64url_decode(b64, len, &raw, &n) < 0)
		goto fail;
	j->header = json_loadb((const char *)raw, n, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(j->header))
		goto fail;
	const json_t *alg = json_object_get(j->header, "alg");
	const json_t *kid = json_object_get(j->header, "kid");
	if (!json_is_string(alg) || (kid && !json_is_string(kid)))
		goto fail;
	if (strcasecmp(json_string_value(alg), "none") == 0) {
		st = AUTHN_ALG_NONE;
		goto fail;
	}
	j->alg = authn_alg_from_name(json_string_value(alg));
	if (j->alg == AUTHN_ALG_MAX) {
		st = AUTHN_UNSUPPORTED_ALG;
		goto fail;
	}
	if (json_object_get(j->header, "crit")) {
		st = AUTHN_UNKNOWN_CRIT;
		goto fail;
	}
	j->kid = kid ? json_string_value(kid) : NULL;
	st = AUTHN_OK;
fail:
	free(raw);
	return st;
}

/* Splits and decodes a compact JWS; see authn_int.h. */
enum authn_status authn_jws_parse(const char *token, size_t len, struct authn_jws *out)
{
	size_t d1 = 0, d2 = 0;
	enum authn_status st = AUTHN_MALFORMED;

	memset(out, 0, sizeof(*out));
	if (!token || len == 0)
		return AUTHN_NO_CREDENTIAL;
	if (jws_split(token, len, &d1, &d2) < 0)
		goto fail;
	st = jws_header(token, d1, out);
	if (st != AUTHN_OK)
		goto fail;
	st = AUTHN_MALFORMED;
	if (authn_b64url_decode(token + d1 + 1, d2 - d1 - 1, &out->payload, &out->payload_len) <
	        0 ||
	    authn_b64url_decode(token + d2 + 1, len - d2 - 1, &out->sig, &out->sig_len) < 0)
		goto fail;
	out->signed_part = token;
	out->signed_len = d2;
	return AUTHN_OK;
fail:
	authn_jws_clear(out);
	return st;
}

/*
 * The key a token names: by exact kid, or, for a token without kid, the issuer's only
 * key. A kid that matches nothing is not retried against other keys.
 */
static const struct authn_key *key_select(const struct authn_issuer *is, const char *kid)
{
	if (!kid)
		return is->n_keys == 1 ? &is->keys[0] : NULL;
	for (size_t i = 0; i < is->n_keys; i++) {
		if (is->keys[i].kid && strcmp(is->keys[i].kid, kid) == 0)
			return &is->keys[i];
	}
	return NULL;
}

/* Key by kid, alg binding, signature; see authn_int.h. */
enum authn_status authn_jws_verify_sig(const struct authn_keys *keys, const struct authn_issuer *is,
                                       const struct authn_jws *j)
{
	const struct authn_key *k = key_select(is, j->kid);

	if (!k)
		return AUTHN_UNKNOWN_KID;
	/* The key decides how it is used: an HS256 token naming an RSA key is refused
	 * here, before its public key could ever be taken as an HMAC secret. */
	if (!(k->algs & AUTHN_ALG_BIT(j->alg)))
		return AUTHN_ALG_MISMATCH;
	if (keys)
		atomic_fetch_add_explicit(keys->n_verify, 1, memory_order_relaxed);
	if (authn_sig_verify(j->alg, k, (const unsigned char *)j->signed_part, j->signed_len,
	                     j->sig, j->sig_len) != 0)
		return AUTHN_BAD_SIGNATURE;
	return AUTHN_OK;
}

/* Frees what authn_jws_parse decoded and zeroes *j; NULL-safe. */
void authn_jws_clear(struct authn_jws *j)
{
	if (!j)
		return;
	json_decref(j->header);
	free(j->payload);
	free(j->sig);
	memset(j, 0, sizeof(*j));
}
