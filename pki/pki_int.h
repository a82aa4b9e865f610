/*
 * pki internals shared by the files of pki/; nothing here is part of the contract.
 */
#ifndef PKI_INT_H
#define PKI_INT_H

#include <pthread.h>
#include <sys/types.h>

#include "pki.h"

/* TLS 1.2: forward secrecy and AEAD only; TLS 1.3 suites are all AEAD already. */
#define PKI_DEFAULT_CIPHERS_TLS12                                                                  \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                               \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                               \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"

#define PKI_DEFAULT_DEPTH       4
#define PKI_DEFAULT_TICKET_LIFE 300
#define PKI_SESS_CACHE_SIZE     20480
#define PKI_TICKET_NAME_LEN     16

struct pki_ticket_key {
	unsigned char name[PKI_TICKET_NAME_LEN];
	unsigned char aes[32];  /* AES-256-CBC */
	unsigned char hmac[32]; /* HMAC-SHA256 */
};

/*
 * Ticket keys: workers read them in every handshake while the main thread rotates them,
 * hence the rwlock. The keys are owned by the SSL_CTX (ex_data with a free callback), not
 * by pki_server, because SSL objects may outlive pki_server_free() and still need them.
 */
struct pki_tickets {
	pthread_rwlock_t lock;
	struct pki_ticket_key cur;
	struct pki_ticket_key prev;
	bool have_prev;
};

struct pki_server {
	SSL_CTX *ctx;
	X509_STORE *store;           /* own ref; also the ctx's verify store */
	struct pki_tickets *tickets; /* borrowed: owned by ctx ex_data, NULL when off */
	struct pki_vcache *vcache;   /* borrowed: owned by ctx ex_data, NULL when off */
	unsigned long vflags;        /* X509_V_FLAG_* used for client chains */
	int depth;
	unsigned char trust_digest[32];
};

/* ---- errors (store.c) ---- */

/* printf into err, appending the first OpenSSL error reason if any; clears the queue. */
void pki_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Reads a whole file (for parsing and digesting the very same bytes). */
int pki_file_read(const char *path, unsigned char **buf, size_t *len, char *err, size_t errlen);

/* ---- store.c ---- */

/*
 * New X509_STORE with the CA bundle and every CRL; digests the file bytes into md.
 * *names receives the CA subjects for the CertificateRequest (owned by caller).
 */
int pki_store_build(const struct pki_server_opts *opts, EVP_MD_CTX *md, X509_STORE **out,
                    STACK_OF(X509_NAME) * *names, char *err, size_t errlen);

/* Loads a PEM chain and its key into ctx, checking that they match. */
int pki_ctx_load_cert_key(SSL_CTX *ctx, const char *cert_file, const char *key_file, char *err,
                          size_t errlen);

int pki_tls_version(enum pki_tls_version v);

/* ---- libctx.c ---- */

/*
 * The library context for TLS server contexts: the default provider with only the
 * decoders certificates need, so each certificate a client sends parses in about half the
 * time. NULL (OpenSSL's default context) when it cannot be built or FIPS is in use.
 */
OSSL_LIB_CTX *pki_lean_libctx(void);

/* ---- leaf.c ---- */

/* SSL ex_data slot for the recorded reason, created once; -1 when OpenSSL refused. */
int pki_reason_index(void);

/* The server's verify callback (records the first failure, runs the leaf checks). */
int pki_verify_cb(int preverify_ok, X509_STORE_CTX *xctx);

enum pki_reason pki_reason_from_x509(int x509_err);

/* ---- tickets.c ---- */

/* Installs the ticket callback with fresh keys on ctx; *out is borrowed from ctx. */
int pki_tickets_install(SSL_CTX *ctx, struct pki_tickets **out, char *err, size_t errlen);
int pki_tickets_rotate(struct pki_tickets *t);

/* ---- fresh.c ---- */

/* In a verify callback: true (and the error cleared) when the failure is an expired CRL
 * still inside the store's grace period. */
bool pki_crl_grace_ok(X509_STORE_CTX *xctx);
/* X509_STORE_CTX ex_data slot that pki_crl_grace_ok marks (non-NULL) when it let an expired
 * CRL pass: the verified-chain cache never keeps such a result. -1 when OpenSSL refused. */
int pki_crl_grace_mark_index(void);
/* Attaches the CRL grace period to store (0 = none) and digests it into md. */
int pki_store_set_crl_grace(X509_STORE *store, unsigned grace, EVP_MD_CTX *md, char *err,
                            size_t errlen);

/* ---- vcache.c ---- */

/* Installs the verified-chain cache on srv->ctx for the chains verified against srv->store
 * (call once both are set up); srv->vcache is borrowed from the ctx. */
int pki_vcache_install(struct pki_server *srv, char *err, size_t errlen);

/* ---- CA tooling (certgen.c, ca_index.c, ca_crl.c) ---- */

#define PKI_CA_PATH_MAX 4096

/* The index in memory: the CRL counter and every issued certificate in issue order. */
struct pki_ca_index {
	unsigned long crl_number; /* the number the next CRL gets */
	struct pki_ca_entry *v;
	size_t n, cap;
};

/* ca_index.c */

/* "dir/name" into out; -1 with a message when it does not fit. */
int pki_ca_path(char *out, size_t cap, const char *dir, const char *name, char *err, size_t errlen);

/*
 * Writes data to path atomically: a temp file in the same directory with mode, fsync,
 * rename (or link when excl, which fails if path exists), fsync of the directory.
 */
int pki_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode, bool excl,
                          char *err, size_t errlen);

/* flock on DIR/.lock (exclusive for writers); returns the fd to pass to pki_ca_unlock. */
int pki_ca_lock(const char *dir, bool excl, char *err, size_t errlen);
void pki_ca_unlock(int fd);

int pki_ca_index_load(const char *dir, struct pki_ca_index *idx, char *err, size_t errlen);
int pki_ca_index_save(const char *dir, const struct pki_ca_index *idx, char *err, size_t errlen);
void pki_ca_index_clear(struct pki_ca_index *idx);
/* Appends a copy of e (cn copied). */
int pki_ca_index_add(struct pki_ca_index *idx, const struct pki_ca_entry *e, char *err,
                     size_t errlen);
/* Entry with this serial (compared in normal form), or NULL. */
struct pki_ca_entry *pki_ca_index_find(struct pki_ca_index *idx, const char *serial_hex);

/* Upper-case hex without separators or leading zeros; -1 if s is not hex. */
int pki_serial_normalize(const char *s, char *out, size_t cap);

/* GeneralizedTime text "YYYYMMDDHHMMSSZ" (UTC) and back. */
void pki_time_format(time_t t, char out[16]);
int pki_time_parse(const char *s, time_t *out);

/* certgen.c */

/* Loads DIR/ca.crt and DIR/ca.key and checks that they match. */
int pki_ca_load(const char *dir, X509 **cert, EVP_PKEY **key, char *err, size_t errlen);

/* Digest for signing with key: NULL for Ed25519 (which signs the message itself). */
const EVP_MD *pki_sign_md(EVP_PKEY *key);

/* PEM of a certificate / CRL / private key into a malloc'ed buffer. */
int pki_pem_cert(X509 *x, char **out, size_t *len);
int pki_pem_crl(X509_CRL *crl, char **out, size_t *len);
int pki_pem_key(EVP_PKEY *key, char **out, size_t *len);

/* ca_crl.c */

/* Signs and writes DIR/crl.pem from idx with CRL number `number` (the caller holds the
 * lock and has already saved an index whose crl_number is past it). */
int pki_ca_crl_write(const char *dir, X509 *ca, EVP_PKEY *key, const struct pki_ca_index *idx,
                     unsigned long number, unsigned days, time_t now, char *err, size_t errlen);

#endif
