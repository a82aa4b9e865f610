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

/* The token part of a principal; all strings owned. */
struct authn_token_id {
	enum authn_cred kind;
	char *iss, *sub, *jti;
	char **scopes;
	size_t n_scopes;
	time_t exp;
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

#endif
