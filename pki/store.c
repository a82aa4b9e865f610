/*
 * Trust material: the client CA bundle plus CRLs in one X509_STORE, certificate/key
 * loading shared by both sides, and the error text helper.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "pki_int.h"

/* Trust files are small; the cap only stops a mistaken path to a huge file. */
#define PKI_FILE_MAX (64u << 20)

void pki_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	unsigned long e = ERR_peek_error();

	if (!err || errlen == 0) {
		ERR_clear_error();
		return;
	}
	va_start(ap, fmt);
	int n = vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	/* The first queued reason is the root cause; later ones are call-site noise. */
	if (e && n >= 0 && (size_t)n < errlen) {
		const char *why = ERR_reason_error_string(e);
		if (why)
			snprintf(err + n, errlen - (size_t)n, ": %s", why);
	}
	ERR_clear_error();
}

int pki_file_read(const char *path, unsigned char **buf, size_t *len, char *err, size_t errlen)
{
	unsigned char *data = NULL;
	FILE *f = fopen(path, "rb");
	long sz;

	if (!f) {
		pki_err(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		return -1;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (sz = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
		pki_err(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		goto fail;
	}
	if ((unsigned long)sz > PKI_FILE_MAX) {
		pki_err(err, errlen, "%s: file too large", path);
		goto fail;
	}
	/* +1 so an empty file still yields a valid pointer. */
	data = malloc((size_t)sz + 1);
	if (!data) {
		pki_err(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	if (fread(data, 1, (size_t)sz, f) != (size_t)sz) {
		pki_err(err, errlen, "%s: cannot read: short read", path);
		goto fail;
	}
	fclose(f);
	*buf = data;
	*len = (size_t)sz;
	return 0;
fail:
	free(data);
	fclose(f);
	return -1;
}

/* Length-prefixed so that moving bytes between two files changes the digest. */
static void digest_blob(EVP_MD_CTX *md, const unsigned char *p, size_t n)
{
	uint64_t len = n;
	EVP_DigestUpdate(md, &len, sizeof(len));
	EVP_DigestUpdate(md, p, n);
}

static STACK_OF(X509_INFO) * parse_pem(const unsigned char *buf, size_t len)
{
	BIO *bio = BIO_new_mem_buf(buf, (int)len);
	STACK_OF(X509_INFO) *infos = NULL;

	if (!bio)
		return NULL;
	infos = PEM_X509_INFO_read_bio(bio, NULL, NULL, NULL);
	BIO_free(bio);
	return infos;
}

/* Adds every certificate of the bundle as a trust anchor and collects its subject. */
static int add_ca_file(X509_STORE *store, STACK_OF(X509_NAME) * names, const char *path,
                       EVP_MD_CTX *md, char *err, size_t errlen)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	STACK_OF(X509_INFO) *infos = NULL;
	int n_certs = 0;

	if (pki_file_read(path, &buf, &len, err, errlen) < 0)
		return -1;
	digest_blob(md, buf, len);
	infos = parse_pem(buf, len);
	if (!infos) {
		pki_err(err, errlen, "%s: cannot parse CA bundle", path);
		goto fail;
	}
	for (int i = 0; i < sk_X509_INFO_num(infos); i++) {
		X509 *x = sk_X509_INFO_value(infos, i)->x509;
		if (!x)
			continue;
		X509_NAME *nm = X509_NAME_dup(X509_get_subject_name(x));
		if (!X509_STORE_add_cert(store, x) || !nm || !sk_X509_NAME_push(names, nm)) {
			X509_NAME_free(nm);
			pki_err(err, errlen, "%s: cannot add CA certificate", path);
			goto fail;
		}
		n_certs++;
	}
	if (n_certs == 0) {
		pki_err(err, errlen, "%s: no CA certificate found", path);
		goto fail;
	}
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	free(buf);
	return 0;
fail:
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	free(buf);
	return -1;
}

/* Adds every CRL in one PEM file; a file without any CRL is an error, not a no-op. */
static int add_crl_file(X509_STORE *store, const char *path, EVP_MD_CTX *md, char *err,
                        size_t errlen)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	STACK_OF(X509_INFO) *infos = NULL;
	int n_crls = 0;

	if (pki_file_read(path, &buf, &len, err, errlen) < 0)
		return -1;
	digest_blob(md, buf, len);
	infos = parse_pem(buf, len);
	if (!infos) {
		pki_err(err, errlen, "%s: cannot parse CRL", path);
		goto fail;
	}
	for (int i = 0; i < sk_X509_INFO_num(infos); i++) {
		X509_CRL *crl = sk_X509_INFO_value(infos, i)->crl;
		if (!crl)
			continue;
		if (!X509_STORE_add_crl(store, crl)) {
			pki_err(err, errlen, "%s: cannot add CRL", path);
			goto fail;
		}
		n_crls++;
	}
	if (n_crls == 0) {
		pki_err(err, errlen, "%s: cannot parse CRL (no CRL found)", path);
		goto fail;
	}
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	free(buf);
	return 0;
fail:
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	free(buf);
	return -1;
}

int pki_store_build(const struct pki_server_opts *opts, EVP_MD_CTX *md, X509_STORE **out,
                    STACK_OF(X509_NAME) * *names_out, char *err, size_t errlen)
{
	X509_STORE *store = X509_STORE_new();
	STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();

	if (!store || !names) {
		pki_err(err, errlen, "out of memory building the trust store");
		goto fail;
	}
	if (opts->client_ca_file &&
	    add_ca_file(store, names, opts->client_ca_file, md, err, errlen) < 0)
		goto fail;
	for (size_t i = 0; i < opts->n_crl_files; i++) {
		if (add_crl_file(store, opts->crl_files[i], md, err, errlen) < 0)
			goto fail;
	}
	/*
	 * CRL checking only when CRLs were given: with CRL_CHECK on and no CRL for an issuer,
	 * OpenSSL fails every chain with "unable to get CRL". CRL_CHECK_ALL extends the check
	 * to intermediates, so each intermediate CA then needs its own CRL as well.
	 */
	if (opts->n_crl_files > 0)
		X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
	X509_STORE_set_purpose(store, X509_PURPOSE_SSL_CLIENT);
	if (pki_store_set_crl_grace(store, opts->crl_grace, md, err, errlen) < 0)
		goto fail;
	*out = store;
	*names_out = names;
	return 0;
fail:
	X509_STORE_free(store);
	sk_X509_NAME_pop_free(names, X509_NAME_free);
	return -1;
}

static EVP_PKEY *read_key(const char *key_file, char *err, size_t errlen)
{
	BIO *bio = BIO_new_file(key_file, "r");
	EVP_PKEY *pkey = NULL;

	if (!bio) {
		pki_err(err, errlen, "%s: cannot read key", key_file);
		return NULL;
	}
	pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (!pkey)
		pki_err(err, errlen, "%s: cannot parse private key", key_file);
	return pkey;
}

int pki_ctx_load_cert_key(SSL_CTX *ctx, const char *cert_file, const char *key_file, char *err,
                          size_t errlen)
{
	EVP_PKEY *pkey = NULL;

	if (!cert_file || !key_file) {
		pki_err(err, errlen, "certificate and key must be given together");
		return -1;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		pki_err(err, errlen, "%s: cannot load certificate chain", cert_file);
		return -1;
	}
	pkey = read_key(key_file, err, errlen);
	if (!pkey)
		return -1;
	/* Checked here rather than by SSL_CTX_use_PrivateKey so the message names both files. */
	if (X509_check_private_key(SSL_CTX_get0_certificate(ctx), pkey) != 1) {
		ERR_clear_error();
		pki_err(err, errlen, "%s: key does not match certificate %s", key_file, cert_file);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		pki_err(err, errlen, "%s: key does not match certificate %s", key_file, cert_file);
		goto fail;
	}
	EVP_PKEY_free(pkey);
	return 0;
fail:
	EVP_PKEY_free(pkey);
	return -1;
}

int pki_tls_version(enum pki_tls_version v)
{
	return v == PKI_TLS13 ? TLS1_3_VERSION : TLS1_2_VERSION;
}
