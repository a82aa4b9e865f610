/*
 * Token minting for the authn tests: keys are generated at test time with OpenSSL and
 * libsodium, exported as JWKs, and tokens are signed here independently of the verifier
 * (ECDSA through OpenSSL's DER output, converted to r||s by this file).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <sodium.h>

#include "authn_int.h"
#include "test_authn_jwt_mint.h"

/* Generates a key for alg; HS256 gets 32 random bytes. NULL on failure. */
struct mint_key *mint_key_new(enum authn_alg alg, const char *kid)
{
	struct mint_key *k = calloc(1, sizeof(*k));

	if (!k || sodium_init() < 0)
		goto fail;
	k->alg = alg;
	k->kid = kid;
	switch (alg) {
	case AUTHN_ALG_ES256:
		k->pkey = EVP_EC_gen("P-256");
		break;
	case AUTHN_ALG_ES384:
		k->pkey = EVP_EC_gen("P-384");
		break;
	case AUTHN_ALG_RS256:
	case AUTHN_ALG_PS256:
		k->pkey = EVP_RSA_gen(2048);
		break;
	case AUTHN_ALG_EDDSA:
		crypto_sign_keypair(k->ed_pk, k->ed_sk);
		return k;
	case AUTHN_ALG_HS256:
		k->secret_len = 32;
		randombytes_buf(k->secret, k->secret_len);
		return k;
	default:
		goto fail;
	}
	if (k->pkey)
		return k;
fail:
	free(k);
	return NULL;
}

void mint_key_free(struct mint_key *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

size_t mint_b64(const void *in, size_t len, char *out, size_t cap)
{
	return authn_b64url_encode(in, len, out, cap);
}

/* EVP signing; for ECDSA the DER result is returned as is (callers convert). */
static int evp_sign(EVP_PKEY *pkey, const EVP_MD *md, int pad, const unsigned char *msg, size_t len,
                    unsigned char *sig, size_t *siglen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	int rc = -1;

	if (!ctx || EVP_DigestSignInit(ctx, &pctx, md, NULL, pkey) != 1)
		goto fail;
	if (pad && EVP_PKEY_CTX_set_rsa_padding(pctx, pad) != 1)
		goto fail;
	if (pad == RSA_PKCS1_PSS_PADDING &&
	    (EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
	     EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) != 1))
		goto fail;
	if (EVP_DigestSign(ctx, sig, siglen, msg, len) == 1)
		rc = 0;
fail:
	EVP_MD_CTX_free(ctx);
	return rc;
}

/* DER ECDSA signature to JWS r||s of 2 * half bytes. */
static int der_to_raw(const unsigned char *der, size_t derlen, size_t half, unsigned char *out)
{
	const unsigned char *p = der;
	ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
	int rc = -1;

	if (es && BN_bn2binpad(ECDSA_SIG_get0_r(es), out, (int)half) == (int)half &&
	    BN_bn2binpad(ECDSA_SIG_get0_s(es), out + half, (int)half) == (int)half)
		rc = 0;
	ECDSA_SIG_free(es);
	return rc;
}

/* Signs msg as alg with k; sig must hold 1024 bytes. der asks for DER ECDSA output. */
int mint_sign_ex(const struct mint_key *k, enum authn_alg alg, const unsigned char *msg, size_t len,
                 unsigned char *sig, size_t *siglen, bool der)
{
	unsigned char tmp[1024];
	size_t tl = sizeof(tmp);

	*siglen = 1024;
	switch (alg) {
	case AUTHN_ALG_ES256:
	case AUTHN_ALG_ES384: {
		size_t half = alg == AUTHN_ALG_ES256 ? 32 : 48;
		if (evp_sign(k->pkey, half == 32 ? EVP_sha256() : EVP_sha384(), 0, msg, len, tmp,
		             &tl) < 0)
			return -1;
		if (der) {
			memcpy(sig, tmp, tl);
			*siglen = tl;
			return 0;
		}
		*siglen = 2 * half;
		return der_to_raw(tmp, tl, half, sig);
	}
	case AUTHN_ALG_RS256:
		return evp_sign(k->pkey, EVP_sha256(), RSA_PKCS1_PADDING, msg, len, sig, siglen);
	case AUTHN_ALG_PS256:
		return evp_sign(k->pkey, EVP_sha256(), RSA_PKCS1_PSS_PADDING, msg, len, sig,
		                siglen);
	case AUTHN_ALG_EDDSA:
		*siglen = 64;
		return crypto_sign_detached(sig, NULL, msg, len, k->ed_sk);
	case AUTHN_ALG_HS256: {
		crypto_auth_hmacsha256_state st;
		*siglen = 32;
		crypto_auth_hmacsha256_init(&st, k->secret, k->secret_len);
		crypto_auth_hmacsha256_update(&st, msg, len);
		return crypto_auth_hmacsha256_final(&st, sig);
	}
	default:
		return -1;
	}
}

/* "b64(header).b64(claims).b64(sig)" signed by k as alg; NULL on failure. */
char *mint_token_ex(const struct mint_key *k, enum authn_alg alg, const char *header,
                    const char *claims, bool der)
{
	size_t hl = strlen(header), cl = strlen(claims);
	size_t cap = 2 * (hl + cl) + 4096;
	char *t = malloc(cap);
	unsigned char sig[1024];
	size_t sl, n;

	if (!t)
		return NULL;
	n = mint_b64(header, hl, t, cap);
	t[n++] = '.';
	n += mint_b64(claims, cl, t + n, cap - n);
	if (mint_sign_ex(k, alg, (const unsigned char *)t, n, sig, &sl, der) < 0) {
		free(t);
		return NULL;
	}
	t[n++] = '.';
	mint_b64(sig, sl, t + n, cap - n);
	return t;
}

char *mint_token(const struct mint_key *k, const char *header, const char *claims)
{
	return mint_token_ex(k, k->alg, header, claims, false);
}

/* Public JWK text for k; alg_member is written as "alg" when not NULL. */
int mint_jwk(const struct mint_key *k, const char *alg_member, char *out, size_t cap)
{
	unsigned char buf[1024];
	char a[1400], b[64];
	size_t n = 0;
	char extra[128] = "";

	if (alg_member)
		snprintf(extra, sizeof(extra), ",\"alg\":\"%s\"", alg_member);
	if (k->alg == AUTHN_ALG_EDDSA) {
		mint_b64(k->ed_pk, 32, a, sizeof(a));
		return snprintf(
		           out, cap,
		           "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"%s\",\"x\":\"%s\"%s}",
		           k->kid, a, extra) < (int)cap
		           ? 0
		           : -1;
	}
	if (k->alg == AUTHN_ALG_ES256 || k->alg == AUTHN_ALG_ES384) {
		size_t half = k->alg == AUTHN_ALG_ES256 ? 32 : 48;
		char y[128];
		if (!EVP_PKEY_get_octet_string_param(k->pkey, OSSL_PKEY_PARAM_PUB_KEY, buf,
		                                     sizeof(buf), &n) ||
		    n != 1 + 2 * half)
			return -1;
		mint_b64(buf + 1, half, a, sizeof(a));
		mint_b64(buf + 1 + half, half, y, sizeof(y));
		return snprintf(out, cap,
		                "{\"kty\":\"EC\",\"crv\":\"%s\",\"kid\":\"%s\",\"x\":\"%s\",\"y\":"
		                "\"%s\"%s}",
		                half == 32 ? "P-256" : "P-384", k->kid, a, y, extra) < (int)cap
		           ? 0
		           : -1;
	}
	BIGNUM *bn_n = NULL, *bn_e = NULL;
	if (!EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_RSA_N, &bn_n) ||
	    !EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_RSA_E, &bn_e))
		return -1;
	n = (size_t)BN_bn2bin(bn_n, buf);
	mint_b64(buf, n, a, sizeof(a));
	n = (size_t)BN_bn2bin(bn_e, buf);
	mint_b64(buf, n, b, sizeof(b));
	BN_free(bn_n);
	BN_free(bn_e);
	return snprintf(out, cap, "{\"kty\":\"RSA\",\"kid\":\"%s\",\"n\":\"%s\",\"e\":\"%s\"%s}",
	                k->kid, a, b, extra) < (int)cap
	           ? 0
	           : -1;
}

/* The standard header for k: {"alg":..,"kid":..}. */
void mint_header(const struct mint_key *k, char *out, size_t cap)
{
	snprintf(out, cap, "{\"alg\":\"%s\",\"kid\":\"%s\",\"typ\":\"JWT\"}",
	         authn_alg_name(k->alg), k->kid);
}
