/*
 * pki: every OpenSSL context the gateway uses, built from plain option structs.
 *
 * A pki_server is the listener side (our certificate, the client CA bundle plus CRLs,
 * the verify callback that records why a handshake failed, session tickets). A
 * pki_client is the upstream side (backend CA, optional client certificate, name check).
 * Both are immutable once built and shared read-only by all worker threads; OpenSSL's
 * own reference counting keeps SSL objects valid after the owner is freed.
 *
 * This module includes no other project header and does no logging: errors come back
 * as text in the caller's buffer, handshake failures as an enum pki_reason.
 */
#ifndef PKI_H
#define PKI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

/* ---- types ---- */

/* TLS protocol floor; TLS 1.0/1.1 are never offered. */
enum pki_tls_version { PKI_TLS12 = 0, PKI_TLS13 };

struct pki_server_opts {
	const char *cert_file;        /* PEM chain, leaf first */
	const char *key_file;         /* PEM private key matching the leaf */
	const char *client_ca_file;   /* PEM bundle of CAs trusted for client certificates */
	const char *const *crl_files; /* PEM CRLs, checked for leaf and intermediates */
	size_t n_crl_files;
	enum pki_tls_version min_version;
	int verify_depth;          /* max intermediates; default 4 when 0 */
	bool require_client_cert;  /* default true; false is for tests of plain TLS only */
	const char *ciphers_tls12; /* OpenSSL cipher list, NULL = secure default */
	const char *suites_tls13;  /* TLS 1.3 suites, NULL = OpenSSL default */
	/* Resumption, one ticket per handshake, renewed on each TLS 1.3 resumption. true:
	 * stateless tickets with our own rotating key; false: stateful, the ticket (TLS 1.2: the
	 * session ID) names a session in the server's cache. */
	bool session_tickets;
	unsigned ticket_lifetime;    /* seconds, never past the client cert's notAfter; 0 = 300 */
	unsigned session_cache_size; /* sessions kept by the server cache; 0 = 20480 */
	const char *alpn;            /* protocol we select, NULL = "http/1.1" */
	/* Added with the operations work: seconds past a CRL's nextUpdate during which it is
	 * still used for revocation checks (0 = an expired CRL fails every chain it covers). */
	unsigned crl_grace;
	/* Added with the verified-chain cache (vcache.c): true turns it off, so that every full
	 * handshake verifies the client chain in full (tests, benchmarks). */
	bool no_verify_cache;
	/* Added with the lean library context (libctx.c): true runs the server in OpenSSL's
	 * default library context, where each client certificate costs its full parse
	 * (benchmarks, tests). */
	bool default_libctx;
};

struct pki_client_opts {
	const char *ca_file;   /* PEM bundle verifying backend certificates */
	const char *cert_file; /* optional client certificate presented to backends */
	const char *key_file;  /* its key */
	enum pki_tls_version min_version;
	bool verify;               /* default true; false must be explicit in config */
	const char *ciphers_tls12; /* NULL = same secure default as the server side */
};

/* Why a client handshake failed. Stable tokens come from pki_reason_str(). */
enum pki_reason {
	PKI_OK = 0,
	PKI_NO_CERT,        /* client sent no certificate */
	PKI_UNKNOWN_CA,     /* chain does not lead to a trusted CA */
	PKI_SELF_SIGNED,    /* self-signed leaf not in the trust store */
	PKI_EXPIRED,        /* leaf or chain member past notAfter */
	PKI_NOT_YET_VALID,  /* before notBefore */
	PKI_REVOKED,        /* listed in a CRL */
	PKI_CRL_PROBLEM,    /* CRL missing, expired or unverifiable */
	PKI_BAD_EKU,        /* key usage / extended key usage forbids client auth */
	PKI_LEAF_IS_CA,     /* leaf carries basicConstraints CA:TRUE */
	PKI_CHAIN_TOO_LONG, /* verify depth exceeded */
	PKI_BAD_SIGNATURE,  /* signature on a chain member does not verify */
	PKI_PROTOCOL,       /* TLS-level failure: version, cipher, garbage, timeout */
	PKI_OTHER,          /* any other verification error */
	PKI_REASON_MAX
};

struct pki_server; /* opaque: SSL_CTX + X509_STORE (CA + CRLs) + ticket keys */
struct pki_client; /* opaque: upstream SSL_CTX */

/* ---- server side ---- */

/*
 * Builds a listener context. Returns 0 and sets *out, or -1 with a message in err naming
 * the file that failed (unreadable file, key/cert mismatch, bad CRL, bad cipher list).
 * Nothing is half-built on failure.
 */
int pki_server_new(const struct pki_server_opts *opts, struct pki_server **out, char *err,
                   size_t errlen);
void pki_server_free(struct pki_server *srv);
SSL_CTX *pki_server_get0_ctx(const struct pki_server *srv); /* borrowed */

/*
 * Reason recorded by the verify callback for this SSL (PKI_OK if verification passed),
 * plus, when the handshake failed before verification, PKI_NO_CERT or PKI_PROTOCOL as
 * derived from the OpenSSL error queue. Call it when a handshake fails.
 */
enum pki_reason pki_ssl_reason(const SSL *ssl);

/* Stable lower_snake token for logs and audit records ("no_cert", "revoked", ...). */
const char *pki_reason_str(enum pki_reason r);

/*
 * Re-verifies an established connection's peer chain against this server's (possibly
 * newer) trust store and CRLs, with the same leaf checks as the handshake. Used after a
 * reload so a kept-alive connection with a now-revoked certificate is cut off.
 */
enum pki_reason pki_server_reverify(const struct pki_server *srv, const SSL *ssl);

/* SHA-256 over the trust settings (CA bundle, CRLs, depth, verify mode) of this server:
 * used as the session id context so a session resumes only where trust is identical. */
void pki_server_trust_digest(const struct pki_server *srv, unsigned char out[32]);

/* Seconds until the server certificate's notAfter (negative when expired). */
long pki_server_cert_expiry(const struct pki_server *srv, time_t now);

/*
 * Verified-chain cache of the listener (see vcache.c): full handshakes that were answered
 * from it (hits) and that verified the client chain in full (misses). Both stay 0 when the
 * cache is off. Counted since the server was built; safe to call from any thread.
 */
void pki_server_vcache_stats(const struct pki_server *srv, uint64_t *hits, uint64_t *misses);

/* Rotates the session ticket encryption key; the previous key still decrypts. A no-op
 * returning 0 for stateful sessions (session_tickets false). */
int pki_server_rotate_tickets(struct pki_server *srv);

/* ---- client side (upstreams) ---- */

int pki_client_new(const struct pki_client_opts *opts, struct pki_client **out, char *err,
                   size_t errlen);
void pki_client_free(struct pki_client *cli);

/*
 * New SSL for one upstream connection: SNI set to host, and (unless verification was
 * disabled explicitly) the certificate name checked against host with SSL_set1_host.
 * host may be an IP literal, then the IP SAN is checked and no SNI is sent.
 * Returns NULL on allocation failure.
 */
SSL *pki_client_ssl_new(const struct pki_client *cli, const char *host);

/* Human readable reason for an upstream handshake failure (verify result or error queue). */
const char *pki_client_error_str(const SSL *ssl, unsigned long errcode);

/* ---- leaf inspection shared with authn ---- */

/*
 * The gateway's own leaf checks on top of OpenSSL's chain verification: a client leaf
 * must not be a CA, and if it has keyUsage it must allow digitalSignature, and if it has
 * extendedKeyUsage it must include clientAuth. Returns PKI_OK or the reason.
 */
enum pki_reason pki_check_client_leaf(X509 *leaf);

/* ---- certificate tooling: a small file-based CA (certgen.c, ca_index.c, ca_crl.c) ---- */

/*
 * A CA directory holds ca.crt, ca.key (0600), index.txt (every issued serial with its
 * status, format in docs/operations.md), crl.pem and certs/SERIAL.crt. Every file is
 * written atomically (temp file, fsync, rename, fsync of the directory) under an flock on
 * DIR/.lock, so a crash or a concurrent run never leaves a torn index or CRL. The clock
 * is never read here: callers pass now.
 */

/* Key algorithms the tooling generates (RSA: 3072 bits for a CA, 2048 for a leaf). */
enum pki_key_type { PKI_KEY_EC_P256 = 0, PKI_KEY_ED25519, PKI_KEY_RSA };

/* RFC 5280 CRLReason codes accepted by pki_revoke (the values are the wire codes). */
enum pki_crl_reason {
	PKI_CRL_UNSPECIFIED = 0,
	PKI_CRL_KEY_COMPROMISE = 1,
	PKI_CRL_CA_COMPROMISE = 2,
	PKI_CRL_AFFILIATION_CHANGED = 3,
	PKI_CRL_SUPERSEDED = 4,
	PKI_CRL_CESSATION_OF_OPERATION = 5,
	PKI_CRL_PRIVILEGE_WITHDRAWN = 9,
};

/* Upper-case hex serial (BN_bn2hex form, as authn_cert_id.serial_hex) plus NUL. */
#define PKI_SERIAL_HEX_MAX 48

struct pki_ca_opts {
	const char *dir;       /* created (0700) if missing; must not hold a CA already */
	const char *cn;        /* subject CN; NULL = "Gateway Client CA" */
	enum pki_key_type key; /* default ECDSA P-256 */
	unsigned days;         /* validity; 0 = 3650 */
	unsigned crl_days;     /* nextUpdate of the first, empty crl.pem; 0 = 30 */
	time_t now;
};

struct pki_issue_opts {
	const char *dir;        /* the CA directory */
	const char *cn;         /* subject CN; printable, no control characters */
	const char *spiffe;     /* optional URI SAN (callers check SPIFFE syntax) */
	const char *const *dns; /* DNS SANs */
	size_t n_dns;
	bool server;            /* serverAuth (and the CN as DNS SAN when none is given)
	                           instead of clientAuth */
	enum pki_key_type key;  /* the new leaf's key */
	time_t not_before;      /* 0 = now - 60 s (clock skew) */
	time_t not_after;       /* 0 = not_before + 365 days; may lie in the past */
	const char *out_prefix; /* PREFIX.crt + PREFIX.key; NULL = DIR/issued/CN */
	time_t now;
};

struct pki_issued {
	char serial_hex[PKI_SERIAL_HEX_MAX];
	char cert_path[4096];
	char key_path[4096];
};

/* One line of the CA index. */
struct pki_ca_entry {
	char serial_hex[PKI_SERIAL_HEX_MAX];
	char *cn; /* owned */
	time_t not_after;
	bool revoked;
	time_t revoked_at;          /* when revoked */
	enum pki_crl_reason reason; /* when revoked */
};

/* Creates a self-signed CA (keyCertSign, cRLSign) and an empty CRL in o->dir. */
int pki_ca_init(const struct pki_ca_opts *o, char *err, size_t errlen);

/*
 * Issues a leaf signed by the CA of o->dir: CA:FALSE, keyUsage digitalSignature (plus
 * keyEncipherment for an RSA server key), EKU clientAuth or serverAuth, SANs as given.
 * The serial is recorded in the index before any file is written; the key file is 0600
 * and existing output files are never overwritten.
 */
int pki_issue(const struct pki_issue_opts *o, struct pki_issued *out, char *err, size_t errlen);

/*
 * Marks a certificate revoked in the index: what is either a serial (hex, any case,
 * optional ':' separators) or a PEM certificate file, which must be signed by this CA.
 * The CRL is not rewritten: call pki_crl_generate. serial_out (may be NULL) receives the
 * serial revoked.
 */
int pki_revoke(const char *dir, const char *what, enum pki_crl_reason reason, time_t now,
               char serial_out[PKI_SERIAL_HEX_MAX], char *err, size_t errlen);

/* Rewrites DIR/crl.pem from the index: next CRL number, nextUpdate = now + days (0 = 30). */
int pki_crl_generate(const char *dir, unsigned days, time_t now, char *err, size_t errlen);

/* The index in issue order; free with pki_ca_list_free. */
int pki_ca_list(const char *dir, struct pki_ca_entry **out, size_t *n, char *err, size_t errlen);
void pki_ca_list_free(struct pki_ca_entry *v, size_t n);

/* RFC 5280 names ("keyCompromise", ...); parse returns -1 for an unknown name. */
const char *pki_crl_reason_str(enum pki_crl_reason r);
int pki_crl_reason_parse(const char *name, enum pki_crl_reason *out);

/* ---- freshness of trust files (fresh.c) ---- */

/*
 * Earliest nextUpdate among the CRLs of a PEM file (0 when none carries one). -1 with
 * the file and reason in err when it cannot be read or holds no CRL.
 */
int pki_crl_file_next_update(const char *path, time_t *next_update, char *err, size_t errlen);

/*
 * Earliest notAfter among the certificates of a PEM file, and the subject (one line,
 * RFC 2253) of that certificate. -1 with the file and reason when there is none.
 */
int pki_cert_file_not_after(const char *path, time_t *not_after, char *subject, size_t subjlen,
                            char *err, size_t errlen);

#endif
