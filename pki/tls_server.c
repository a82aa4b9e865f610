/*
 * The listener's SSL_CTX: protocol floor and ciphers, our certificate, client
 * certificate verification against the CA bundle and CRLs, ALPN, sessions and tickets.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "pki_int.h"

static pthread_once_t alpn_once = PTHREAD_ONCE_INIT;
static int alpn_idx = -1;

/* The ALPN protocol lives in ctx ex_data so it outlives pki_server like the ctx does. */
static void alpn_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	free(ptr);
}

static void alpn_index_init(void)
{
	alpn_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, alpn_free);
}

/*
 * Selects our protocol if the client offers it. A client offering ALPN without it gets
 * a no_application_protocol alert rather than a silent fallback: it asked for something
 * we do not speak. Clients without ALPN never reach this callback.
 */
static int alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned int inlen, void *arg)
{
	const unsigned char *want = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), alpn_idx);
	unsigned int i = 0;

	if (!want)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	while (i < inlen) {
		unsigned int n = in[i];
		if (n == 0 || n > inlen - i - 1)
			break;
		if (n == want[0] && memcmp(in + i + 1, want + 1, n) == 0) {
			*out = in + i + 1;
			*outlen = (unsigned char)n;
			return SSL_TLSEXT_ERR_OK;
		}
		i += n + 1;
	}
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static int setup_alpn(SSL_CTX *ctx, const char *proto, char *err, size_t errlen)
{
	size_t n = strlen(proto);
	unsigned char *wire = NULL;

	pthread_once(&alpn_once, alpn_index_init);
	if (alpn_idx < 0 || n == 0 || n > 255) {
		pki_err(err, errlen, "alpn \"%s\": invalid protocol name", proto);
		return -1;
	}
	wire = malloc(n + 1);
	if (!wire) {
		pki_err(err, errlen, "alpn: out of memory");
		return -1;
	}
	wire[0] = (unsigned char)n;
	memcpy(wire + 1, proto, n);
	if (SSL_CTX_set_ex_data(ctx, alpn_idx, wire) != 1) {
		free(wire);
		pki_err(err, errlen, "alpn: cannot attach protocol");
		return -1;
	}
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, NULL);
	return 0;
}

/*
 * SNI is accepted whatever the name (the gateway only reads it, to match it against Host).
 * The callback is there for its side effect: without one OpenSSL 3.0 does not acknowledge
 * the name and does not keep it in the session, and as a TLS 1.2 resumption takes the name
 * from the session (SSL_get_servername), a resumed TLS 1.2 connection had none. TLS 1.3
 * always reports the name sent in the current handshake.
 */
static int servername_cb(SSL *ssl, int *alert, void *arg)
{
	return SSL_TLSEXT_ERR_OK;
}

static int setup_protocol(SSL_CTX *ctx, const struct pki_server_opts *opts, char *err,
                          size_t errlen)
{
	/*
	 * Renegotiation is off entirely (NO_RENEGOTIATION); OpenSSL 3.0 has no
	 * NO_CLIENT_RENEGOTIATION option, its inverse ALLOW_CLIENT_RENEGOTIATION is cleared.
	 */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
	                             SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_clear_options(ctx, SSL_OP_ALLOW_CLIENT_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_set_min_proto_version(ctx, pki_tls_version(opts->min_version)) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
		pki_err(err, errlen, "cannot set TLS protocol versions");
		return -1;
	}
	const char *ciphers = opts->ciphers_tls12 ? opts->ciphers_tls12 : PKI_DEFAULT_CIPHERS_TLS12;
	if (SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
		pki_err(err, errlen, "ciphers \"%s\": no usable cipher", ciphers);
		return -1;
	}
	if (opts->suites_tls13 && SSL_CTX_set_ciphersuites(ctx, opts->suites_tls13) != 1) {
		pki_err(err, errlen, "ciphersuites \"%s\": invalid TLS 1.3 suites",
		        opts->suites_tls13);
		return -1;
	}
	SSL_CTX_set_tlsext_servername_callback(ctx, servername_cb);
	return setup_alpn(ctx, opts->alpn ? opts->alpn : "http/1.1", err, errlen);
}

/* Digest of everything that decides whether a client certificate is accepted. */
static void digest_params(EVP_MD_CTX *md, const struct pki_server_opts *opts, int depth)
{
	int32_t v[3] = {depth, opts->require_client_cert ? 1 : 0, (int32_t)opts->min_version};
	EVP_DigestUpdate(md, "pki-trust-v1", 12);
	EVP_DigestUpdate(md, v, sizeof(v));
}

/*
 * Client verification. Without require_client_cert the server still asks for and checks
 * a certificate when a CA bundle is given (but accepts none), and is plain TLS otherwise.
 */
static int setup_verify(struct pki_server *srv, const struct pki_server_opts *opts, char *err,
                        size_t errlen)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	STACK_OF(X509_NAME) *names = NULL;
	int mode;

	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		pki_err(err, errlen, "cannot initialise SHA-256");
		goto fail;
	}
	if (opts->require_client_cert && !opts->client_ca_file) {
		pki_err(err, errlen, "client certificates required but no client CA file given");
		goto fail;
	}
	digest_params(md, opts, srv->depth);
	if (pki_store_build(opts, md, &srv->store, &names, err, errlen) < 0)
		goto fail;
	if (EVP_DigestFinal_ex(md, srv->trust_digest, NULL) != 1) {
		pki_err(err, errlen, "cannot finish SHA-256");
		goto fail;
	}
	srv->vflags = X509_VERIFY_PARAM_get_flags(X509_STORE_get0_param(srv->store));
	if (SSL_CTX_set1_verify_cert_store(srv->ctx, srv->store) != 1) {
		pki_err(err, errlen, "cannot attach the client trust store");
		goto fail;
	}
	/* Flags on the ctx's param too: the SSL's param is what the handshake applies. */
	X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(srv->ctx), srv->vflags);
	SSL_CTX_set_purpose(srv->ctx, X509_PURPOSE_SSL_CLIENT);
	SSL_CTX_set_verify_depth(srv->ctx, srv->depth);
	SSL_CTX_set_client_CA_list(srv->ctx, names); /* takes ownership */
	names = NULL;
	mode = SSL_VERIFY_NONE;
	if (opts->require_client_cert)
		mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
	else if (opts->client_ca_file)
		mode = SSL_VERIFY_PEER;
	SSL_CTX_set_verify(srv->ctx, mode, pki_verify_cb);
	/* Sessions resume only under a listener whose trust is byte-for-byte the same. */
	if (SSL_CTX_set_session_id_context(srv->ctx, srv->trust_digest,
	                                   sizeof(srv->trust_digest)) != 1) {
		pki_err(err, errlen, "cannot set session id context");
		goto fail;
	}
	EVP_MD_CTX_free(md);
	return 0;
fail:
	sk_X509_NAME_pop_free(names, X509_NAME_free);
	EVP_MD_CTX_free(md);
	return -1;
}

/*
 * A session never outlives the client certificate it was verified with: its timeout is cut
 * at the leaf's notAfter. OpenSSL checks the timeout on every resumption (cache and
 * tickets alike) and falls back to a full handshake, which then refuses the expired
 * certificate. Without this, a TLS 1.3 client could chain resumptions past notAfter: each
 * resumption starts a new session with a fresh time and timeout.
 */
static void session_cap_to_cert(SSL_SESSION *sess)
{
	X509 *peer = sess ? SSL_SESSION_get0_peer(sess) : NULL;
	struct tm tm;

	if (!peer || ASN1_TIME_to_tm(X509_get0_notAfter(peer), &tm) != 1)
		return;
	long start = SSL_SESSION_get_time(sess);
	long until = (long)timegm(&tm);
	long left = until > start ? until - start : 0;
	if (left < SSL_SESSION_get_timeout(sess))
		SSL_SESSION_set_timeout(sess, left);
}

/*
 * Every new ticket, stateful or stateless, TLS 1.3 or 1.2: OpenSSL calls this once the
 * session it carries has its final time and timeout (in TLS 1.3 a resumption makes a new
 * session with a fresh time), before the ticket and its lifetime hint are written.
 */
static int ticket_gen_cb(SSL *ssl, void *arg)
{
	session_cap_to_cert(SSL_get_session(ssl));
	return 1;
}

/* A session going into the cache: covers TLS 1.2 session IDs, which get no ticket. */
static int session_new_cb(SSL *ssl, SSL_SESSION *sess)
{
	session_cap_to_cert(sess);
	return 0; /* no reference kept */
}

/*
 * Resumption. Every handshake (full or resumed) gives the client one ticket, and a
 * resumption under TLS 1.3 gives a fresh one, so a client that reconnects keeps resuming:
 * - stateful (default, session_tickets false): SSL_OP_NO_TICKET, which under TLS 1.3 means
 *   a ticket that only names a session in this context's cache (TLS 1.2: a session ID).
 *   No session is serialised or parsed; the cache keeps the peer certificate and chain.
 * - stateless (session_tickets true): the session, client certificate included, encrypted
 *   under our rotating key (tickets.c); TLS 1.2 clients without tickets still get IDs.
 * The cache is per SSL_CTX, i.e. per listener and configuration generation: a reload
 * (new CRLs) starts empty and with new ticket keys, so nothing resumes across it.
 */
static int setup_sessions(struct pki_server *srv, const struct pki_server_opts *opts, char *err,
                          size_t errlen)
{
	SSL_CTX_set_session_cache_mode(srv->ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_sess_set_cache_size(srv->ctx, opts->session_cache_size ? opts->session_cache_size
	                                                               : PKI_SESS_CACHE_SIZE);
	SSL_CTX_set_timeout(srv->ctx, opts->ticket_lifetime ? opts->ticket_lifetime
	                                                    : PKI_DEFAULT_TICKET_LIFE);
	SSL_CTX_sess_set_new_cb(srv->ctx, session_new_cb);
	if (SSL_CTX_set_session_ticket_cb(srv->ctx, ticket_gen_cb, NULL, NULL) != 1) {
		pki_err(err, errlen, "session tickets: cannot install callback");
		return -1;
	}
	/* One ticket: OpenSSL's default of two costs a second ticket per handshake. */
	SSL_CTX_set_num_tickets(srv->ctx, 1);
	if (!opts->session_tickets) {
		SSL_CTX_set_options(srv->ctx, SSL_OP_NO_TICKET);
		return 0;
	}
	return pki_tickets_install(srv->ctx, &srv->tickets, err, errlen);
}

int pki_server_new(const struct pki_server_opts *opts, struct pki_server **out, char *err,
                   size_t errlen)
{
	struct pki_server *srv = NULL;

	if (!opts || !out || !opts->cert_file || !opts->key_file) {
		pki_err(err, errlen, "server certificate and key are required");
		return -1;
	}
	if (pki_reason_index() < 0 || pki_crl_grace_mark_index() < 0) {
		pki_err(err, errlen, "cannot allocate OpenSSL ex_data index");
		return -1;
	}
	srv = calloc(1, sizeof(*srv));
	if (!srv) {
		pki_err(err, errlen, "out of memory");
		return -1;
	}
	srv->depth = opts->verify_depth > 0 ? opts->verify_depth : PKI_DEFAULT_DEPTH;
	srv->ctx = SSL_CTX_new_ex(opts->default_libctx ? NULL : pki_lean_libctx(), NULL,
	                          TLS_server_method());
	if (!srv->ctx) {
		pki_err(err, errlen, "cannot create TLS server context");
		goto fail;
	}
	if (setup_protocol(srv->ctx, opts, err, errlen) < 0 ||
	    pki_ctx_load_cert_key(srv->ctx, opts->cert_file, opts->key_file, err, errlen) < 0 ||
	    setup_verify(srv, opts, err, errlen) < 0 ||
	    setup_sessions(srv, opts, err, errlen) < 0 ||
	    (!opts->no_verify_cache && pki_vcache_install(srv, err, errlen) < 0))
		goto fail;
	*out = srv;
	return 0;
fail:
	pki_server_free(srv);
	return -1;
}

void pki_server_free(struct pki_server *srv)
{
	if (!srv)
		return;
	/* Live SSLs keep the ctx (and with it ticket keys and ALPN data) alive. */
	SSL_CTX_free(srv->ctx);
	X509_STORE_free(srv->store);
	free(srv);
}

SSL_CTX *pki_server_get0_ctx(const struct pki_server *srv)
{
	return srv ? srv->ctx : NULL;
}

void pki_server_trust_digest(const struct pki_server *srv, unsigned char out[32])
{
	memcpy(out, srv->trust_digest, sizeof(srv->trust_digest));
}

long pki_server_cert_expiry(const struct pki_server *srv, time_t now)
{
	X509 *x = SSL_CTX_get0_certificate(srv->ctx);
	struct tm tm;

	if (!x || ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1)
		return 0;
	return (long)(timegm(&tm) - now);
}

int pki_server_rotate_tickets(struct pki_server *srv)
{
	if (!srv)
		return -1;
	/* Stateful sessions: no key to rotate, and nothing wrong either. */
	if (!srv->tickets)
		return 0;
	return pki_tickets_rotate(srv->tickets);
}
