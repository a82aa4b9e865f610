/*
 * The signature primitive behind every token: one function per algorithm family, each
 * refusing anything but the exact signature shape its JWS algorithm defines (RFC 7518),
 * so that no alternative encoding of a signature ever verifies.
 */
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <sodium.h>

#include "authn_int.h"

static const char *const alg_names[AUTHN_ALG_MAX] = {
    [AUTHN_ALG_ES256] = "ES256", [AUTHN_ALG_ES384] = "ES384", [AUTHN_ALG_RS256] = "RS256",
    [AUTHN_ALG_PS256] = "PS256", [AUTHN_ALG_EDDSA] = "EdDSA", [AUTHN_ALG_HS256] = "HS256",
};

/* Exact, case-sensitive match (RFC 7515 4.1.1). */
enum authn_alg authn_alg_from_name(const char *name)
{
	for (int a = 0; name && a < AUTHN_ALG_MAX; a++) {
		if (strcmp(name, alg_names[a]) == 0)
			return (enum authn_alg)a;
	}
	return AUTHN_ALG_MAX;
}

/* The JWS name of an algorithm; "?" out of range. */
const char *authn_alg_name(enum authn_alg a)
{
	return (unsigned)a < AUTHN_ALG_MAX ? alg_names[a] : "?";
}

/*
 * EVP digest-verify with optional RSA padding settings; 0 if valid. The error queue is
 * cleared because a failed verification leaves entries that would otherwise pile up on
 * the worker thread and confuse the next TLS call there.
 */
static int evp_verify(EVP_PKEY *pkey, const EVP_MD *md, int rsa_pad, const unsigned char *msg,
                      size_t len, const unsigned char *sig, size_t siglen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	int rc = -1;

	if (!ctx || EVP_DigestVerifyInit(ctx, &pctx, md, NULL, pkey) != 1)
		goto fail;
	if (rsa_pad && EVP_PKEY_CTX_set_rsa_padding(pctx, rsa_pad) != 1)
		goto fail;
	/* RFC 7518 3.5: MGF1 with the same hash, salt as long as the hash; the length is
	 * pinned so that a signature with another salt length is refused. */
	if (rsa_pad == RSA_PKCS1_PSS_PADDING &&
	    (EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
	     EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) != 1))
		goto fail;
	if (EVP_DigestVerify(ctx, sig, siglen, msg, len) == 1)
		rc = 0;
fail:
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return rc;
}

/*
 * ES256/ES384: the JWS form is r||s, each exactly the coordinate size. It is converted to
 * the DER that OpenSSL verifies; OpenSSL then refuses r or s that is zero or not below
 * the group order. A DER signature in the token has the wrong length and never gets here.
 */
static int ecdsa_verify(const struct authn_key *key, size_t half, const EVP_MD *md,
                        const unsigned char *msg, size_t len, const unsigned char *sig,
                        size_t siglen)
{
	ECDSA_SIG *es = ECDSA_SIG_new();
	BIGNUM *r = NULL, *s = NULL;
	unsigned char *der = NULL;
	int rc = -1;

	if (!es || siglen != 2 * half)
		goto fail;
	r = BN_bin2bn(sig, (int)half, NULL);
	s = BN_bin2bn(sig + half, (int)half, NULL);
	if (!r || !s || ECDSA_SIG_set0(es, r, s) != 1)
		goto fail;
	r = s = NULL; /* owned by es now */
	int derlen = i2d_ECDSA_SIG(es, &der);
	if (derlen <= 0)
		goto fail;
	rc = evp_verify(key->pkey, md, 0, msg, len, der, (size_t)derlen);
fail:
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(es);
	OPENSSL_free(der);
	ERR_clear_error();
	return rc;
}

/* RS256/PS256: the signature is exactly as long as the modulus (no leading-zero games). */
static int rsa_verify(const struct authn_key *key, int pad, const unsigned char *msg, size_t len,
                      const unsigned char *sig, size_t siglen)
{
	int size = EVP_PKEY_get_size(key->pkey);

	if (size <= 0 || siglen != (size_t)size)
		return -1;
	return evp_verify(key->pkey, EVP_sha256(), pad, msg, len, sig, siglen);
}

/* HS256 with a configured secret; the MAC is compared in constant time. */
static int hmac_verify(const struct authn_key *key, const unsigned char *msg, size_t len,
                       const unsigned char *sig, size_t siglen)
{
	crypto_auth_hmacsha256_state st;
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	int rc = -1;

	if (siglen != sizeof(mac) || !key->raw)
		return -1;
	if (crypto_auth_hmacsha256_init(&st, key->raw, key->raw_len) == 0 &&
	    crypto_auth_hmacsha256_update(&st, msg, len) == 0 &&
	    crypto_auth_hmacsha256_final(&st, mac) == 0)
		rc = sodium_memcmp(mac, sig, sizeof(mac)) == 0 ? 0 : -1;
	sodium_memzero(&st, sizeof(st));
	sodium_memzero(mac, sizeof(mac));
	return rc;
}

/* Verifies sig over msg; see authn_int.h. The alg binding is checked here once more. */
int authn_sig_verify(enum authn_alg alg, const struct authn_key *key, const unsigned char *msg,
                     size_t len, const unsigned char *sig, size_t siglen)
{
	if (!key || (unsigned)alg >= AUTHN_ALG_MAX || !(key->algs & AUTHN_ALG_BIT(alg)))
		return -1;
	switch (alg) {
	case AUTHN_ALG_ES256:
		return key->pkey ? ecdsa_verify(key, 32, EVP_sha256(), msg, len, sig, siglen) : -1;
	case AUTHN_ALG_ES384:
		return key->pkey ? ecdsa_verify(key, 48, EVP_sha384(), msg, len, sig, siglen) : -1;
	case AUTHN_ALG_RS256:
		return key->pkey ? rsa_verify(key, RSA_PKCS1_PADDING, msg, len, sig, siglen) : -1;
	case AUTHN_ALG_PS256:
		return key->pkey ? rsa_verify(key, RSA_PKCS1_PSS_PADDING, msg, len, sig, siglen)
		                 : -1;
	case AUTHN_ALG_EDDSA:
		/* libsodium refuses non-canonical S and small-order keys and R. */
		if (!key->raw || key->raw_len != crypto_sign_PUBLICKEYBYTES ||
		    siglen != crypto_sign_BYTES)
			return -1;
		return crypto_sign_verify_detached(sig, msg, len, key->raw) == 0 ? 0 : -1;
	case AUTHN_ALG_HS256:
		return hmac_verify(key, msg, len, sig, siglen);
	default:
		return -1;
	}
}
