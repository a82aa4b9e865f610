/*
 * The upstream side: one SSL_CTX per backend cluster (backend CA, optional client
 * certificate) and per-connection SSLs carrying SNI and the expected name.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "pki_int.h"

struct pki_client {
	SSL_CTX *ctx;
	bool verify;
};

static const unsigned char client_alpn[] = "\x08http/1.1";

static int client_setup(struct pki_client *cli, const struct pki_client_opts *opts, char *err,
                        size_t errlen)
{
	const char *ciphers = opts->ciphers_tls12 ? opts->ciphers_tls12 : PKI_DEFAULT_CIPHERS_TLS12;

	SSL_CTX_set_options(cli->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(cli->ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(cli->ctx, SSL_SESS_CACHE_CLIENT);
	if (SSL_CTX_set_min_proto_version(cli->ctx, pki_tls_version(opts->min_version)) != 1 ||
	    SSL_CTX_set_max_proto_version(cli->ctx, TLS1_3_VERSION) != 1) {
		pki_err(err, errlen, "cannot set TLS protocol versions");
		return -1;
	}
	if (SSL_CTX_set_cipher_list(cli->ctx, ciphers) != 1) {
		pki_err(err, errlen, "ciphers \"%s\": no usable cipher", ciphers);
		return -1;
	}
	/* Note the inverted convention: 0 is success for this one. */
	if (SSL_CTX_set_alpn_protos(cli->ctx, client_alpn, sizeof(client_alpn) - 1) != 0) {
		pki_err(err, errlen, "cannot set ALPN");
		return -1;
	}
	if (opts->cert_file || opts->key_file) {
		if (pki_ctx_load_cert_key(cli->ctx, opts->cert_file, opts->key_file, err, errlen) <
		    0)
			return -1;
	}
	if (!opts->verify) {
		SSL_CTX_set_verify(cli->ctx, SSL_VERIFY_NONE, NULL);
		return 0;
	}
	if (!opts->ca_file) {
		pki_err(err, errlen, "backend CA file required when verification is on");
		return -1;
	}
	if (SSL_CTX_load_verify_file(cli->ctx, opts->ca_file) != 1) {
		pki_err(err, errlen, "%s: cannot load CA bundle", opts->ca_file);
		return -1;
	}
	SSL_CTX_set_purpose(cli->ctx, X509_PURPOSE_SSL_SERVER);
	SSL_CTX_set_verify(cli->ctx, SSL_VERIFY_PEER, NULL);
	return 0;
}

int pki_client_new(const struct pki_client_opts *opts, struct pki_client **out, char *err,
                   size_t errlen)
{
	struct pki_client *cli = NULL;

	if (!opts || !out) {
		pki_err(err, errlen, "missing client options");
		return -1;
	}
	cli = calloc(1, sizeof(*cli));
	if (!cli) {
		pki_err(err, errlen, "out of memory");
		return -1;
	}
	cli->verify = opts->verify;
	cli->ctx = SSL_CTX_new(TLS_client_method());
	if (!cli->ctx) {
		pki_err(err, errlen, "cannot create TLS client context");
		goto fail;
	}
	if (client_setup(cli, opts, err, errlen) < 0)
		goto fail;
	*out = cli;
	return 0;
fail:
	pki_client_free(cli);
	return -1;
}

void pki_client_free(struct pki_client *cli)
{
	if (!cli)
		return;
	SSL_CTX_free(cli->ctx);
	free(cli);
}

/* Copies host into buf without IPv6 brackets; true when it is an IP literal. */
static bool host_is_ip(const char *host, char *buf, size_t buflen)
{
	size_t n = strlen(host);
	unsigned char addr[16];

	if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
		host++;
		n -= 2;
	}
	if (n >= buflen)
		return false;
	memcpy(buf, host, n);
	buf[n] = '\0';
	return inet_pton(AF_INET, buf, addr) == 1 || inet_pton(AF_INET6, buf, addr) == 1;
}

static int set_peer_name(const struct pki_client *cli, SSL *ssl, const char *host)
{
	char ip[INET6_ADDRSTRLEN + 1];

	if (host_is_ip(host, ip, sizeof(ip))) {
		/* SNI must not carry an IP literal (RFC 6066); check the IP SAN instead. */
		if (cli->verify && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ip) != 1)
			return -1;
		return 0;
	}
	if (SSL_set_tlsext_host_name(ssl, host) != 1)
		return -1;
	if (cli->verify && SSL_set1_host(ssl, host) != 1)
		return -1;
	return 0;
}

SSL *pki_client_ssl_new(const struct pki_client *cli, const char *host)
{
	SSL *ssl = NULL;

	if (!cli)
		return NULL;
	ssl = SSL_new(cli->ctx);
	if (!ssl)
		goto fail;
	SSL_set_connect_state(ssl);
	if (host && *host && set_peer_name(cli, ssl, host) < 0)
		goto fail;
	return ssl;
fail:
	SSL_free(ssl);
	ERR_clear_error();
	return NULL;
}

const char *pki_client_error_str(const SSL *ssl, unsigned long errcode)
{
	if (ssl) {
		long vr = SSL_get_verify_result(ssl);
		if (vr != X509_V_OK)
			return X509_verify_cert_error_string(vr);
	}
	if (errcode) {
		const char *why = ERR_reason_error_string(errcode);
		if (why)
			return why;
	}
	return "tls handshake failed";
}
