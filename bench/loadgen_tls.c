/* Client SSL_CTX for gw_loadgen: one per worker thread, so no lock is shared on the hot path. */
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "loadgen.h"

/* Append the newest OpenSSL error to a message prefix. */
static void tls_err(char *err, size_t errlen, const char *what, const char *file)
{
	char ebuf[160];
	ERR_error_string_n(ERR_peek_last_error(), ebuf, sizeof(ebuf));
	snprintf(err, errlen, "%s %s: %s", what, file ? file : "", ebuf);
	ERR_clear_error();
}

/* Server verification: chain against --ca (or the system store), then the name or IP.
 * --insecure skips both, for benchmarking a server with a throwaway certificate. */
static int tls_verify_setup(SSL_CTX *ctx, const struct lg_opts *o, char *err, size_t errlen)
{
	if (o->insecure) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		return 0;
	}
	int ok = o->ca_file ? SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL)
	                    : SSL_CTX_set_default_verify_paths(ctx);
	if (ok != 1) {
		tls_err(err, errlen, "cannot load CA", o->ca_file);
		return -1;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	/* Set on the context once instead of per SSL: every connection checks the same name. */
	X509_VERIFY_PARAM *vp = SSL_CTX_get0_param(ctx);
	if (o->servername)
		ok = X509_VERIFY_PARAM_set1_host(vp, o->servername, 0);
	else if (o->host_is_ip)
		ok = X509_VERIFY_PARAM_set1_ip_asc(vp, o->host);
	else
		ok = X509_VERIFY_PARAM_set1_host(vp, o->host, 0);
	if (ok != 1) {
		tls_err(err, errlen, "cannot set the name to verify", NULL);
		return -1;
	}
	return 0;
}

SSL_CTX *lg_tls_ctx_new(const struct lg_opts *o, char *err, size_t errlen)
{
	static const unsigned char alpn[] = "\x08http/1.1";
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		tls_err(err, errlen, "SSL_CTX_new", NULL);
		goto fail;
	}
	int minv = o->tls_version ? o->tls_version : TLS1_2_VERSION;
	if (!SSL_CTX_set_min_proto_version(ctx, minv) ||
	    !SSL_CTX_set_max_proto_version(ctx, o->tls_version)) {
		tls_err(err, errlen, "cannot set the TLS version", NULL);
		goto fail;
	}
	/* Partial writes let a large body go out record by record without re-offering it. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
	/* HTTP/1.0 bodies end at EOF and many servers close without close_notify: treat that
	 * as a plain EOF (llhttp then decides whether the response was complete). */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* Without read-ahead OpenSSL reads a record header and its body with two read()s. */
	SSL_CTX_set_read_ahead(ctx, 1);
	if (SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1) != 0) {
		tls_err(err, errlen, "cannot set ALPN", NULL);
		goto fail;
	}
	if (o->cert_file) {
		if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1) {
			tls_err(err, errlen, "cannot load certificate", o->cert_file);
			goto fail;
		}
		if (SSL_CTX_use_PrivateKey_file(ctx, o->key_file, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(ctx) != 1) {
			tls_err(err, errlen, "cannot load key", o->key_file);
			goto fail;
		}
	}
	if (tls_verify_setup(ctx, o, err, errlen))
		goto fail;
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}
