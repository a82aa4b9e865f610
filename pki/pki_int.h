/*
 * pki internals shared by the files of pki/; nothing here is part of the contract.
 */
#ifndef PKI_INT_H
#define PKI_INT_H

#include <pthread.h>

#include "pki.h"

/* TLS 1.2: forward secrecy and AEAD only; TLS 1.3 suites are all AEAD already. */
#define PKI_DEFAULT_CIPHERS_TLS12                                                                  \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                               \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                               \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"

#define PKI_DEFAULT_DEPTH       4
#define PKI_DEFAULT_TICKET_LIFE 7200
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

#endif
