/*
 * authn internals: the key set's layout, the JWS steps and the signature primitive, shared
 * by the module's files and by the tests (Wycheproof vectors go through authn_sig_verify
 * and authn_jws_* exactly as tokens do). Nothing here is for the gateway.
 */
#ifndef AUTHN_INT_H
#define AUTHN_INT_H

#include <stdatomic.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "authn.h"

/* ---- types ---- */

/* The JWS algorithms we verify. */
enum authn_alg {
	AUTHN_ALG_ES256 = 0,
	AUTHN_ALG_ES384,
	AUTHN_ALG_RS256,
	AUTHN_ALG_PS256,
	AUTHN_ALG_EDDSA,
	AUTHN_ALG_HS256,
	AUTHN_ALG_MAX
};
#define AUTHN_ALG_BIT(a) (1u << (a))

#define AUTHN_RSA_MIN_BITS 2048
#define AUTHN_RSA_MAX_BITS 16384 /* larger moduli only make verification a DoS lever */
#define AUTHN_HMAC_MIN_LEN 32    /* RFC 7518 3.2: at least the hash size */
#define AUTHN_HMAC_MAX_LEN 1024

/* One verification key. */
struct authn_key {
	char *kid;          /* NULL when it has none */
	unsigned algs;      /* AUTHN_ALG_BIT()s this key may verify: the alg binding */
	EVP_PKEY *pkey;     /* EC and RSA keys */
	unsigned char *raw; /* Ed25519 public key (32 bytes) or HMAC secret */
	size_t raw_len;
};

struct authn_issuer {
	char *name, *issuer, *audience, *scope_claim;
	uint32_t leeway, max_token;
	struct authn_key *keys;
	size_t n_keys;
};

struct authn_apikey {
	unsigned char hash[32];
	char *sub;
	char **scopes;
	size_t n_scopes;
};

struct authn_keys {
	uint64_t serial; /* unique per key set, so caches never mix two of them */
	struct authn_issuer *issuers;
	size_t n_issuers;
	uint32_t max_token; /* the largest issuer limit: checked before anything is parsed */
	bool has_apikeys;
	unsigned char apikey_hash_key[AUTHN_APIKEY_HASH_KEY_BYTES];
	struct authn_apikey *apikeys;
	size_t n_apikeys;
	/* Signature verifications done; a pointer so it can count through a const key set. */
	atomic_ulong *n_verify;
};

/* A compact JWS split and decoded; header checks done, signature not yet. */
struct authn_jws {
	json_t *header; /* owned */
	enum authn_alg alg;
	const char *kid;         /* borrowed from header; NULL when absent */
	const char *signed_part; /* borrowed from the token: "header.payload" */
	size_t signed_len;
	unsigned char *payload; /* owned, decoded */
	size_t payload_len;
	unsigned char *sig; /* owned, decoded */
	size_t sig_len;
};

/* ---- b64url.c ---- */

/* Strict base64url without padding: the whole input must decode, unused bits zero.
 * Returns a malloc'd buffer (NUL-terminated for convenience) in *out, or -1. */
int authn_b64url_decode(const char *in, size_t len, unsigned char **out, size_t *outlen);
/* The same into a caller buffer; -1 if invalid or longer than cap. */
int authn_b64url_decode_to(const char *in, size_t len, unsigned char *out, size_t cap,
                           size_t *outlen);
/* Encodes without padding into out (cap >= 4 * len / 3 + 2); returns the length or 0. */
size_t authn_b64url_encode(const unsigned char *in, size_t len, char *out, size_t cap);
/* Exactly 2 * n hex digits to n bytes; -1 otherwise. */
int authn_hex_decode(const char *hex, size_t hexlen, unsigned char *out, size_t n);
void authn_hex_encode(const unsigned char *in, size_t n, char *out /* 2n + 1 */);

/* ---- util.c ---- */

/* True if p[0..n) holds no control characters (C0, DEL, UTF-8 C1); they would forge log
 * lines or headers downstream. */
bool authn_text_clean(const char *p, size_t n);
/* Reads a whole file of at most max bytes (NUL-terminated). 0, or -1 with "path: why". */
int authn_file_read(const char *path, size_t max, char **out, size_t *len, char *err,
                    size_t errlen);

/* ---- sig.c ---- */

/* JWS "alg" value to enum; AUTHN_ALG_MAX if not one we verify. */
enum authn_alg authn_alg_from_name(const char *name);
const char *authn_alg_name(enum authn_alg a);
/*
 * Verifies sig over msg with key for alg: 0 if valid, -1 otherwise (also when the key
 * may not be used with alg). ES* signatures are the raw r||s of exact length; RSA ones
 * exactly the modulus size; PS256 uses MGF1-SHA-256 and a 32-byte salt.
 */
int authn_sig_verify(enum authn_alg alg, const struct authn_key *key, const unsigned char *msg,
                     size_t len, const unsigned char *sig, size_t siglen);

/* ---- jwks.c ---- */

/*
 * One JWK to a key. Returns 0 with *skipped false (usable), 0 with *skipped true (a key
 * type, curve or algorithm we do not verify, or not meant for signatures), or -1 with err.
 */
int authn_key_from_jwk(const json_t *jwk, struct authn_key *out, bool *skipped, char *err,
                       size_t errlen);
/* A JWKS document to an owned array of usable keys; -1 with err (see authn_keys_new). */
int authn_jwks_parse(const char *text, size_t len, struct authn_key **keys, size_t *n, char *err,
                     size_t errlen);
void authn_key_clear(struct authn_key *k);

/* ---- keys.c ---- */

/* The issuer whose iss is exactly iss, or NULL. */
const struct authn_issuer *authn_keys_issuer_find(const struct authn_keys *k, const char *iss);
/* The i-th configured issuer (tests), or NULL. */
const struct authn_issuer *authn_keys_issuer_at(const struct authn_keys *k, size_t i);
/* Signature verifications done with this key set so far. */
unsigned long authn_keys_verify_count(const struct authn_keys *k);

/* ---- jws.c ---- */

/* Splits and decodes a compact JWS and checks its header (alg, crit, kid type). The
 * payload is not interpreted. On failure *out is cleared. */
enum authn_status authn_jws_parse(const char *token, size_t len, struct authn_jws *out);
/* Selects the issuer's key by kid, checks the alg binding and the signature. */
enum authn_status authn_jws_verify_sig(const struct authn_keys *keys, const struct authn_issuer *is,
                                       const struct authn_jws *j);
void authn_jws_clear(struct authn_jws *j);

/* ---- apikey.c ---- */

/* Reads the API key table into k (hash key already set). 0, or -1 after report(s). */
int authn_apikeys_load(struct authn_keys *k, const char *file, char *err, size_t errlen);
void authn_apikeys_free(struct authn_keys *k);

#endif
