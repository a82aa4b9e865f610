/*
 * JWK and JWKS (RFC 7517) to verification keys. Each key is bound here to the algorithms
 * it may verify, from its kty/crv and, when present, its "alg": this binding is what keeps
 * a token from choosing how its key is used (HS256 with an RSA key as the secret).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <sodium.h>

#include "authn_int.h"

#define JWKS_MAX_KEYS 256
#define RSA_MAX_BYTES (AUTHN_RSA_MAX_BITS / 8)

/* Optional string member: 0 with *out NULL when absent, -1 when not a string. */
static int jwk_str(const json_t *jwk, const char *name, const char **out, char *err, size_t errlen)
{
	const json_t *v = json_object_get(jwk, name);

	*out = NULL;
	if (!v)
		return 0;
	if (!json_is_string(v)) {
		snprintf(err, errlen, "\"%s\" is not a string", name);
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

/* Required base64url member decoded into buf; -1 with err if absent or invalid. */
static int jwk_b64(const json_t *jwk, const char *name, unsigned char *buf, size_t cap, size_t *len,
                   char *err, size_t errlen)
{
	const json_t *v = json_object_get(jwk, name);

	if (!json_is_string(v) ||
	    authn_b64url_decode_to(json_string_value(v), json_string_length(v), buf, cap, len) !=
	        0) {
		snprintf(err, errlen, "\"%s\" is missing or not valid base64url", name);
		return -1;
	}
	return 0;
}

/* Imports a public key from OSSL params; for EC the point is checked to be on the curve. */
static int pkey_from_params(const char *type, OSSL_PARAM *params, EVP_PKEY **out, char *err,
                            size_t errlen)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY_CTX *check = NULL;
	EVP_PKEY *pkey = NULL;
	int rc = -1;

	if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		snprintf(err, errlen, "not a valid %s public key", type);
		goto fail;
	}
	check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	if (!check || EVP_PKEY_public_check(check) != 1) {
		snprintf(err, errlen, "%s public key fails its validity check", type);
		goto fail;
	}
	*out = pkey;
	pkey = NULL;
	rc = 0;
fail:
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(check);
	EVP_PKEY_CTX_free(ctx);
	ERR_clear_error();
	return rc;
}

/* One EC coordinate: exactly coord bytes (RFC 7518 6.2.1.2: the full size, no trimming). */
static int ec_coord(const json_t *jwk, const char *name, size_t coord, unsigned char *dst,
                    char *err, size_t errlen)
{
	unsigned char tmp[64];
	size_t n;

	if (jwk_b64(jwk, name, tmp, sizeof(tmp), &n, err, errlen) < 0)
		return -1;
	if (n != coord) {
		snprintf(err, errlen, "EC coordinate \"%s\" is %zu bytes, not %zu", name, n, coord);
		return -1;
	}
	memcpy(dst, tmp, n);
	return 0;
}

/* EC public key from x and y on the named group. */
static int ec_key(const json_t *jwk, const char *group, size_t coord, EVP_PKEY **out, char *err,
                  size_t errlen)
{
	unsigned char pt[1 + 2 * 48];

	pt[0] = 0x04; /* uncompressed point */
	if (ec_coord(jwk, "x", coord, pt + 1, err, errlen) < 0 ||
	    ec_coord(jwk, "y", coord, pt + 1 + coord, err, errlen) < 0)
		return -1;
	OSSL_PARAM params[] = {
	    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)group, 0),
	    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, 1 + 2 * coord),
	    OSSL_PARAM_END,
	};
	return pkey_from_params("EC", params, out, err, errlen);
}

/* RSA: n of 2048..16384 bits. */
static int rsa_key(const json_t *jwk, EVP_PKEY **out, char *err, size_t errlen)
{
	unsigned char *nb = malloc(RSA_MAX_BYTES + 16), eb[16];
	size_t nlen, elen;
	BIGNUM *n = NULL, *e = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	int rc = -1;

	if (!nb) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (jwk_b64(jwk, "n", nb, RSA_MAX_BYTES + 16, &nlen, err, errlen) < 0 ||
	    jwk_b64(jwk, "e", eb, sizeof(eb), &elen, err, errlen) < 0)
		goto fail;
	n = BN_bin2bn(nb, (int)nlen, NULL);
	e = BN_bin2bn(eb, (int)elen, NULL);
	bld = OSSL_PARAM_BLD_new();
	if (!n || !e || !bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) ||
	    !(params = OSSL_PARAM_BLD_to_param(bld))) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	int bits = BN_num_bits(n);
	if (bits < AUTHN_RSA_MIN_BITS || bits > AUTHN_RSA_MAX_BITS) {
		snprintf(err, errlen, "RSA key has %d bits; %d to %d are accepted", bits,
		         AUTHN_RSA_MIN_BITS, AUTHN_RSA_MAX_BITS);
		goto fail;
	}
	rc = pkey_from_params("RSA", params, out, err, errlen);
fail:
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(e);
	free(nb);
	return rc;
}

/* Ed25519: x is the 32-byte public key, verified with libsodium. */
static int okp_key(const json_t *jwk, struct authn_key *k, char *err, size_t errlen)
{
	unsigned char x[64];
	size_t n;

	if (jwk_b64(jwk, "x", x, sizeof(x), &n, err, errlen) < 0)
		return -1;
	if (n != 32) {
		snprintf(err, errlen, "Ed25519 key is %zu bytes, not 32", n);
		return -1;
	}
	k->raw = malloc(32);
	if (!k->raw) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memcpy(k->raw, x, 32);
	k->raw_len = 32;
	return 0;
}

/* Whether a JWK is meant for verifying signatures: "use" and "key_ops" (RFC 7517 4.2-4.3). */
static bool jwk_for_signatures(const json_t *jwk)
{
	const json_t *use = json_object_get(jwk, "use");
	const json_t *ops = json_object_get(jwk, "key_ops");
	size_t i;
	const json_t *op;

	if (use && (!json_is_string(use) || strcmp(json_string_value(use), "sig") != 0))
		return false;
	if (!ops)
		return true;
	json_array_foreach(ops, i, op)
	{
		if (json_is_string(op) && strcmp(json_string_value(op), "verify") == 0)
			return true;
	}
	return false;
}

/*
 * The algorithms a key of this kty/crv may verify, narrowed by its "alg". Returns the
 * bit set, 0 to skip the key (a type, curve or algorithm we do not verify), or -1 when
 * the "alg" contradicts the key type.
 */
static int jwk_algs(const char *kty, const char *crv, const char *alg, char *err, size_t errlen)
{
	unsigned fam = 0;

	if (strcmp(kty, "EC") == 0 && crv && strcmp(crv, "P-256") == 0)
		fam = AUTHN_ALG_BIT(AUTHN_ALG_ES256);
	else if (strcmp(kty, "EC") == 0 && crv && strcmp(crv, "P-384") == 0)
		fam = AUTHN_ALG_BIT(AUTHN_ALG_ES384);
	else if (strcmp(kty, "RSA") == 0)
		fam = AUTHN_ALG_BIT(AUTHN_ALG_RS256) | AUTHN_ALG_BIT(AUTHN_ALG_PS256);
	else if (strcmp(kty, "OKP") == 0 && crv && strcmp(crv, "Ed25519") == 0)
		fam = AUTHN_ALG_BIT(AUTHN_ALG_EDDSA);
	if (!fam || !alg)
		return (int)fam;
	enum authn_alg a = authn_alg_from_name(alg);
	if (a == AUTHN_ALG_MAX)
		return 0; /* e.g. RS512 or ECDH-ES: not ours to verify */
	if (!(fam & AUTHN_ALG_BIT(a))) {
		snprintf(err, errlen, "\"alg\" %s does not fit an %s%s%s key", alg, kty,
		         crv ? " " : "", crv ? crv : "");
		return -1;
	}
	return (int)AUTHN_ALG_BIT(a);
}

/* Refuses material that must never be in a public key set. */
static int jwk_public_only(const json_t *jwk, const char *kty, char *err, size_t errlen)
{
	if (strcmp(kty, "oct") == 0) {
		snprintf(err, errlen,
		         "symmetric (oct) keys are not taken from a JWKS; "
		         "configure hmac_secret instead");
		return -1;
	}
	if (json_object_get(jwk, "d") || json_object_get(jwk, "p") || json_object_get(jwk, "q")) {
		snprintf(err, errlen, "holds private key material; publish only the public key");
		return -1;
	}
	return 0;
}

/* One JWK to a key; see authn_int.h. */
int authn_key_from_jwk(const json_t *jwk, struct authn_key *out, bool *skipped, char *err,
                       size_t errlen)
{
	const char *kty, *crv, *alg, *kid;
	struct authn_key k = {0};
	int algs;

	memset(out, 0, sizeof(*out));
	*skipped = false;
	if (!json_is_object(jwk)) {
		snprintf(err, errlen, "is not a JSON object");
		return -1;
	}
	if (jwk_str(jwk, "kty", &kty, err, errlen) < 0 ||
	    jwk_str(jwk, "crv", &crv, err, errlen) < 0 ||
	    jwk_str(jwk, "alg", &alg, err, errlen) < 0 ||
	    jwk_str(jwk, "kid", &kid, err, errlen) < 0)
		return -1;
	if (!kty) {
		snprintf(err, errlen, "has no \"kty\"");
		return -1;
	}
	if (jwk_public_only(jwk, kty, err, errlen) < 0)
		return -1;
	algs = jwk_algs(kty, crv, alg, err, errlen);
	if (algs < 0)
		return -1;
	if (algs == 0 || !jwk_for_signatures(jwk)) {
		*skipped = true;
		return 0;
	}
	k.algs = (unsigned)algs;
	int rc;
	if (strcmp(kty, "RSA") == 0)
		rc = rsa_key(jwk, &k.pkey, err, errlen);
	else if (strcmp(kty, "OKP") == 0)
		rc = okp_key(jwk, &k, err, errlen);
	else
		rc = ec_key(jwk, strcmp(crv, "P-256") == 0 ? "P-256" : "P-384",
		            strcmp(crv, "P-256") == 0 ? 32 : 48, &k.pkey, err, errlen);
	if (rc == 0 && kid && !(k.kid = strdup(kid))) {
		snprintf(err, errlen, "out of memory");
		rc = -1;
	}
	if (rc < 0) {
		authn_key_clear(&k);
		return -1;
	}
	*out = k;
	return 0;
}

/* Frees a key, wiping secret bytes, and zeroes it; NULL-safe. */
void authn_key_clear(struct authn_key *k)
{
	if (!k)
		return;
	free(k->kid);
	EVP_PKEY_free(k->pkey);
	if (k->raw) {
		sodium_memzero(k->raw, k->raw_len);
		free(k->raw);
	}
	memset(k, 0, sizeof(*k));
}

/* Frees an array of n keys. */
static void keys_free(struct authn_key *keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		authn_key_clear(&keys[i]);
	free(keys);
}

/* A second key with the same kid would make the choice of key ambiguous. */
static bool kid_taken(const struct authn_key *keys, size_t n, const char *kid)
{
	for (size_t i = 0; kid && i < n; i++) {
		if (keys[i].kid && strcmp(keys[i].kid, kid) == 0)
			return true;
	}
	return false;
}

/* Adds the usable keys of the array ks to v; -1 with err naming the bad key. */
static int jwks_collect(const json_t *ks, struct authn_key *v, size_t *n, char *err, size_t errlen)
{
	char why[256];
	size_t i;
	const json_t *jwk;

	json_array_foreach(ks, i, jwk)
	{
		bool skipped;
		const json_t *kidv = json_object_get(jwk, "kid");
		const char *kid = json_is_string(kidv) ? json_string_value(kidv) : NULL;
		if (authn_key_from_jwk(jwk, &v[*n], &skipped, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "key %zu%s%.64s%s %s", i, kid ? " (kid \"" : "",
			         kid ? kid : "", kid ? "\")" : "", why);
			return -1;
		}
		if (skipped)
			continue;
		if (kid_taken(v, *n, kid)) {
			authn_key_clear(&v[*n]);
			snprintf(err, errlen, "key %zu: kid \"%.64s\" is used twice", i, kid);
			return -1;
		}
		(*n)++;
	}
	return 0;
}

/* A JWKS document to its usable keys; see authn_int.h. */
int authn_jwks_parse(const char *text, size_t len, struct authn_key **keys, size_t *n, char *err,
                     size_t errlen)
{
	json_error_t je;
	json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	const json_t *ks = json_object_get(doc, "keys");
	struct authn_key *v = NULL;
	size_t got = 0;

	*keys = NULL;
	*n = 0;
	if (!doc) {
		snprintf(err, errlen, "JWKS is not valid JSON (line %d: %s)", je.line, je.text);
		goto fail;
	}
	if (!json_is_array(ks) || json_array_size(ks) > JWKS_MAX_KEYS) {
		snprintf(err, errlen, "JWKS needs a \"keys\" array of at most %d keys",
		         JWKS_MAX_KEYS);
		goto fail;
	}
	v = calloc(json_array_size(ks) + 1, sizeof(*v));
	if (!v) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (jwks_collect(ks, v, &got, err, errlen) < 0)
		goto fail;
	if (got == 0) {
		snprintf(err, errlen,
		         "JWKS has no usable signature key (ES256, ES384, RS256, "
		         "PS256 or EdDSA)");
		goto fail;
	}
	json_decref(doc);
	*keys = v;
	*n = got;
	return 0;
fail:
	keys_free(v, got);
	json_decref(doc);
	return -1;
}
