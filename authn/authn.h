/*
 * authn: who the peer is, from what was verified.
 *
 * This module turns an already-verified client certificate (and, later, bearer tokens
 * and API keys) into a principal: plain data that the policy decides on, the audit log
 * records and the forwarder summarises for the backend. No sockets, no libevent, no
 * clock: time is passed in, so every function here can be unit-tested and fuzzed alone.
 */
#ifndef AUTHN_H
#define AUTHN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/x509.h>

/* ---- types ---- */

/*
 * The certificate part of a principal. Filled once per TLS connection; owns all its
 * strings (freed by authn_cert_id_clear). Strings are NUL-terminated and never contain
 * control characters (certificates that carry them in an identity field are refused).
 */
struct authn_cert_id {
	char *spiffe_id;       /* the one URI SAN starting with spiffe://, if a valid SVID */
	char *cn;              /* subject commonName (the last one), or NULL */
	char *subject;         /* RFC 2253 subject, for the audit log */
	char *issuer;          /* RFC 2253 issuer */
	char *serial_hex;      /* upper-case hex serial */
	char **san_dns;        /* DNS SANs */
	size_t n_dns;
	char **san_uri;        /* URI SANs, in certificate order */
	size_t n_uri;
	char **san_email;      /* rfc822 SANs */
	size_t n_email;
	unsigned char sha256[32]; /* SHA-256 over the leaf's DER */
	char sha256_hex[65];      /* the same, lower-case hex */
	time_t not_after;
};

/* Kinds of credential that can stand beside the certificate (filled in by later work). */
enum authn_cred { AUTHN_CRED_NONE = 0, AUTHN_CRED_JWT, AUTHN_CRED_APIKEY };

/* The token part of a principal; all strings owned (freed by authn_token_id_clear). */
struct authn_token_id {
	enum authn_cred kind;
	char *iss, *sub, *jti;
	char **scopes;
	size_t n_scopes;
	time_t exp;
	/* Added with the token work: */
	char *aud;                  /* the configured audience the token was accepted for (JWT) */
	bool cert_bound;            /* the token carried cnf.x5t#S256 (RFC 8705), checked */
	unsigned char x5t_s256[32]; /* that certificate hash, when cert_bound */
};

/* Everything verified about one request's caller. */
struct authn_principal {
	const struct authn_cert_id *cert; /* borrowed: lives as long as the TLS connection */
	struct authn_token_id token;      /* valid when has_token */
	bool has_token;
};

/* ---- certificate identity ---- */

/*
 * Fills *out from a verified leaf. The SPIFFE ID is set only when the leaf follows the
 * X509-SVID rules: exactly one URI SAN, it is a well-formed spiffe:// ID (lower-case trust
 * domain, no query/fragment/port/userinfo, no empty, "." or ".." path segments), and the
 * leaf is not a CA. A leaf with several URI SANs still gets its CN identity.
 * Returns 0, or -1 with a reason in err (allocation failure, control characters).
 */
int authn_cert_id_from_x509(struct authn_cert_id *out, X509 *leaf, char *err, size_t errlen);

/* Frees the strings of *id and zeroes it; safe on a zeroed or already-cleared struct. */
void authn_cert_id_clear(struct authn_cert_id *id);

/* The identity the logs and headers show: the SPIFFE ID if present, else the CN;
 * NULL when the certificate has neither. Borrowed from id. */
const char *authn_cert_id_name(const struct authn_cert_id *id);

/* True if s is a syntactically valid SPIFFE ID (the rules above). */
bool authn_spiffe_id_valid(const char *s, size_t len);

/* ---- bearer tokens and API keys: types ---- */

/*
 * Why a credential was refused; authn_status_str() gives the stable token that goes to the
 * audit log (it never contains any part of the credential). Every status but AUTHN_OK and
 * AUTHN_INTERNAL is a 401 for the client; AUTHN_INTERNAL (out of memory) is a 500.
 */
enum authn_status {
	AUTHN_OK = 0,
	AUTHN_NO_CREDENTIAL,   /* "no_credential": empty token or key */
	AUTHN_MALFORMED,       /* "malformed": not compact JWS, bad base64url/JSON/claim type */
	AUTHN_TOKEN_TOO_LARGE, /* "token_too_large": over the issuer's max_token */
	AUTHN_ALG_NONE,        /* "alg_none": never accepted */
	AUTHN_UNSUPPORTED_ALG, /* "unsupported_alg": not ES256/ES384/RS256/PS256/EdDSA/HS256 */
	AUTHN_UNKNOWN_CRIT,    /* "unknown_crit": we understand no crit extension */
	AUTHN_BAD_ISSUER,      /* "bad_issuer": no configured issuer has this exact iss */
	AUTHN_UNKNOWN_KID,     /* "unknown_kid": the issuer has no key with this kid */
	AUTHN_ALG_MISMATCH,    /* "alg_mismatch": the token's alg is not the key's */
	AUTHN_BAD_SIGNATURE,   /* "bad_signature" */
	AUTHN_MISSING_EXP,     /* "missing_exp" */
	AUTHN_EXPIRED,         /* "expired": now >= exp + leeway */
	AUTHN_NOT_YET_VALID,   /* "not_yet_valid": nbf or iat later than now + leeway */
	AUTHN_BAD_AUDIENCE,    /* "bad_audience": aud lacks the configured audience */
	AUTHN_NOT_BOUND,       /* "token_not_bound_to_certificate" (RFC 8705) */
	AUTHN_UNKNOWN_API_KEY, /* "unknown_api_key" */
	AUTHN_INTERNAL,        /* "internal_error": allocation failure */
	AUTHN_STATUS_MAX
};

#define AUTHN_LEEWAY_DEFAULT        60   /* seconds of clock skew allowed on exp/nbf/iat */
#define AUTHN_MAX_TOKEN_DEFAULT     8192 /* bytes */
#define AUTHN_CACHE_DEFAULT         4096 /* entries of a worker's token cache */
#define AUTHN_APIKEY_HASH_KEY_BYTES 32   /* BLAKE2b key for the API key file */
#define AUTHN_APIKEY_HEX_LEN        64   /* hex of a 32-byte hash, without the NUL */
#define AUTHN_APIKEY_LEN            47   /* "gwk_" + 43 base64url chars, without the NUL */

/* Called for every problem authn_keys_new finds, with the file:line given in the opts. */
typedef void (*authn_report_fn)(void *arg, bool is_error, const char *file, int line,
                                const char *msg);

/* One trusted token issuer. Strings are only read during authn_keys_new. */
struct authn_issuer_opts {
	const char *name;      /* label for messages; NULL = the issuer string */
	const char *issuer;    /* "iss" must equal this exactly (required) */
	const char *audience;  /* "aud" must contain this (required) */
	const char *jwks_file; /* JWKS (RFC 7517 {"keys":[...]}) file, or NULL */
	const char *jwks_json; /* or the JWKS text in memory (e.g. fetched over HTTPS) */
	size_t jwks_json_len;
	const char *hmac_secret_file; /* HS256 secret as base64url text (>= 32 bytes), or NULL */
	const unsigned char *hmac_secret; /* or the raw secret in memory */
	size_t hmac_secret_len;
	const char *hmac_kid;    /* kid naming the HMAC key; NULL = it has none */
	const char *scope_claim; /* claim holding scopes; NULL = "scope" */
	uint32_t leeway;         /* seconds; callers use AUTHN_LEEWAY_DEFAULT */
	uint32_t max_token;      /* bytes; 0 = AUTHN_MAX_TOKEN_DEFAULT */
	const char *file;        /* where it was configured, for report; may be NULL */
	int line;
};

struct authn_keys_opts {
	const struct authn_issuer_opts *issuers;
	size_t n_issuers;
	const char *apikey_file; /* API key table (format in docs/config.md), or NULL */
	const char
	    *apikey_hash_key_file;    /* its BLAKE2b key: 64 hex chars; required with the file */
	const char *apikey_conf_file; /* where api_keys was configured, for report */
	int apikey_conf_line;
	authn_report_fn report; /* may be NULL */
	void *report_arg;
};

/* Immutable once built: issuers with their keys, the API key table. Shared read-only by
 * all threads (its one counter is atomic). */
struct authn_keys;

/* LRU cache of verified tokens, keyed by the token's SHA-256. NOT thread-safe: one per
 * worker thread, never shared. */
struct authn_cache;

/* ---- keys ---- */

/*
 * Builds the key set: reads every JWKS, HMAC secret and API key file, checks them and
 * reports every problem through o->report (the first also in err). A JWKS that does not
 * parse, holds private or symmetric keys, a duplicate kid, an RSA key under 2048 bits, or
 * has no usable signing key is refused, so a reload keeps the old key set. Keys of other
 * types or algorithms, and keys with use != "sig" or key_ops without "verify", are
 * skipped. Returns 0 and sets *out (owned, free with authn_keys_free), or -1.
 */
int authn_keys_new(const struct authn_keys_opts *o, struct authn_keys **out, char *err,
                   size_t errlen);
void authn_keys_free(struct authn_keys *k);
bool authn_keys_has_issuers(const struct authn_keys *k);
bool authn_keys_has_apikeys(const struct authn_keys *k);

/* ---- tokens ---- */

/*
 * Verifies a JWS compact JWT (without the "Bearer " prefix) at time now: size, base64url,
 * JSON (duplicate keys refused), alg (never none, bound to the key), kid, crit, signature,
 * iss, aud, exp, nbf, iat, then the certificate binding: a token carrying cnf.x5t#S256 must
 * match cert's SHA-256 (cert may be NULL: then it cannot match); require_bound refuses a
 * token without it. On AUTHN_OK *out is filled (free with authn_token_id_clear); on any
 * other status *out is zeroed. keys may be NULL (no issuer: AUTHN_BAD_ISSUER).
 */
enum authn_status authn_token_verify(const struct authn_keys *keys, const char *token, size_t len,
                                     time_t now, const struct authn_cert_id *cert,
                                     bool require_bound, struct authn_token_id *out);

/*
 * The same through a worker's cache (may be NULL): a token verified before and not yet at
 * its exp is answered from the cache, with the binding still checked against cert; else it
 * is verified and, if good, remembered. Entries from another key set are never used.
 */
enum authn_status authn_token_check(const struct authn_keys *keys, struct authn_cache *cache,
                                    const char *token, size_t len, time_t now,
                                    const struct authn_cert_id *cert, bool require_bound,
                                    struct authn_token_id *out);

/* Frees the strings of *id and zeroes it; safe on a zeroed or cleared struct. */
void authn_token_id_clear(struct authn_token_id *id);
/* Deep copy; 0, or -1 (out of memory, *dst zeroed). */
int authn_token_id_copy(struct authn_token_id *dst, const struct authn_token_id *src);
/* Stable reason token; "unknown" for values out of range. */
const char *authn_status_str(enum authn_status s);

/* ---- token cache (one per worker thread) ---- */

/* A cache of at most max_entries tokens (0 = AUTHN_CACHE_DEFAULT); NULL if out of memory. */
struct authn_cache *authn_cache_new(size_t max_entries);
void authn_cache_free(struct authn_cache *c);

/*
 * Looks the token up. Returns true on a hit: *status is AUTHN_OK with *out filled, or
 * AUTHN_NOT_BOUND / AUTHN_INTERNAL. Returns false on a miss (also for an entry at or after
 * its exp, which is dropped, and when keys is not the key set the entries were made with).
 */
bool authn_cache_lookup(struct authn_cache *c, const struct authn_keys *keys, const char *token,
                        size_t len, time_t now, const struct authn_cert_id *cert,
                        bool require_bound, struct authn_token_id *out, enum authn_status *status);
/* Remembers a token that authn_token_verify accepted with keys (evicting the least
 * recently used entry when full). 0, or -1 when out of memory or already expired. */
int authn_cache_insert(struct authn_cache *c, const struct authn_keys *keys, const char *token,
                       size_t len, time_t now, const struct authn_token_id *id);
size_t authn_cache_count(const struct authn_cache *c);

/* ---- API keys ---- */

/*
 * Checks an opaque API key against the table: its keyed BLAKE2b hash is compared in
 * constant time with every entry. On AUTHN_OK *out has kind AUTHN_CRED_APIKEY, sub and
 * scopes; otherwise it is zeroed. keys may be NULL (AUTHN_UNKNOWN_API_KEY).
 */
enum authn_status authn_apikey_verify(const struct authn_keys *keys, const char *key, size_t len,
                                      struct authn_token_id *out);
/* Lower-case hex BLAKE2b-256 of key under hash_key, as the key file stores it. 0 or -1. */
int authn_apikey_hash(const unsigned char hash_key[AUTHN_APIKEY_HASH_KEY_BYTES], const char *key,
                      size_t len, char out_hex[AUTHN_APIKEY_HEX_LEN + 1]);
/* A new random key "gwk_<43 base64url>" in key_out and its hash in hash_hex. 0 or -1. */
int authn_apikey_generate(const unsigned char hash_key[AUTHN_APIKEY_HASH_KEY_BYTES],
                          char key_out[AUTHN_APIKEY_LEN + 1],
                          char hash_hex[AUTHN_APIKEY_HEX_LEN + 1]);
/* A new random hashing key, raw and as the hex text its file holds. 0 or -1. */
int authn_apikey_hash_key_generate(unsigned char key[AUTHN_APIKEY_HASH_KEY_BYTES],
                                   char hex[AUTHN_APIKEY_HEX_LEN + 1]);
/* Reads a hashing key file (64 hex chars, optional trailing newline). 0, or -1 with err. */
int authn_apikey_hash_key_load(const char *file, unsigned char key[AUTHN_APIKEY_HASH_KEY_BYTES],
                               char *err, size_t errlen);

#endif
