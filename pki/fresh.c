/*
 * Freshness of trust files: the nextUpdate of CRLs and the notAfter of certificates, read
 * for load-time checks and expiry warnings, and the CRL grace period applied during
 * verification (an expired CRL is still used for a bounded time instead of failing every
 * client it covers).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "pki_int.h"

static STACK_OF(X509_INFO) * read_infos(const char *path, char *err, size_t errlen)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	BIO *bio;
	STACK_OF(X509_INFO) *infos = NULL;

	if (pki_file_read(path, &buf, &len, err, errlen) < 0)
		return NULL;
	bio = BIO_new_mem_buf(buf, (int)len);
	if (bio)
		infos = PEM_X509_INFO_read_bio(bio, NULL, NULL, NULL);
	BIO_free(bio);
	free(buf);
	if (!infos)
		pki_err(err, errlen, "%s: cannot parse PEM", path);
	return infos;
}

static int asn1_to_time(const ASN1_TIME *a, time_t *out)
{
	struct tm tm;
	if (!a || ASN1_TIME_to_tm(a, &tm) != 1)
		return -1;
	*out = timegm(&tm);
	return 0;
}

int pki_crl_file_next_update(const char *path, time_t *next_update, char *err, size_t errlen)
{
	STACK_OF(X509_INFO) *infos = read_infos(path, err, errlen);
	int n_crls = 0;
	time_t best = 0, t;

	if (!infos)
		return -1;
	for (int i = 0; i < sk_X509_INFO_num(infos); i++) {
		X509_CRL *crl = sk_X509_INFO_value(infos, i)->crl;
		if (!crl)
			continue;
		n_crls++;
		if (asn1_to_time(X509_CRL_get0_nextUpdate(crl), &t) == 0 && (best == 0 || t < best))
			best = t;
	}
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	if (n_crls == 0) {
		pki_err(err, errlen, "%s: cannot parse CRL (no CRL found)", path);
		return -1;
	}
	*next_update = best;
	return 0;
}

int pki_cert_file_not_after(const char *path, time_t *not_after, char *subject, size_t subjlen,
                            char *err, size_t errlen)
{
	STACK_OF(X509_INFO) *infos = read_infos(path, err, errlen);
	X509 *first = NULL;
	time_t best = 0, t;

	if (!infos)
		return -1;
	for (int i = 0; i < sk_X509_INFO_num(infos); i++) {
		X509 *x = sk_X509_INFO_value(infos, i)->x509;
		if (!x || asn1_to_time(X509_get0_notAfter(x), &t) < 0)
			continue;
		if (!first || t < best) {
			first = x;
			best = t;
		}
	}
	if (!first) {
		sk_X509_INFO_pop_free(infos, X509_INFO_free);
		pki_err(err, errlen, "%s: no certificate found", path);
		return -1;
	}
	if (subject && subjlen > 0) {
		BIO *b = BIO_new(BIO_s_mem());
		int n = b ? X509_NAME_print_ex(b, X509_get_subject_name(first), 0, XN_FLAG_RFC2253)
		          : -1;
		n = n > 0 ? BIO_read(b, subject, (int)subjlen - 1) : 0;
		subject[n > 0 ? n : 0] = '\0';
		BIO_free(b);
	}
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	*not_after = best;
	return 0;
}

/* ---- CRL grace period ---- */

static pthread_once_t grace_once = PTHREAD_ONCE_INIT;
static int grace_idx = -1;

static void grace_index_init(void)
{
	grace_idx = X509_STORE_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static pthread_once_t mark_once = PTHREAD_ONCE_INIT;
static int mark_idx = -1;

static void mark_index_init(void)
{
	mark_idx = X509_STORE_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

int pki_crl_grace_mark_index(void)
{
	pthread_once(&mark_once, mark_index_init);
	return mark_idx;
}

bool pki_crl_grace_ok(X509_STORE_CTX *xctx)
{
	X509_STORE *store = X509_STORE_CTX_get0_store(xctx);
	X509_CRL *crl = X509_STORE_CTX_get0_current_crl(xctx);
	const ASN1_TIME *nu = crl ? X509_CRL_get0_nextUpdate(crl) : NULL;
	X509_VERIFY_PARAM *vp = X509_STORE_CTX_get0_param(xctx);
	time_t now, limit;

	if (X509_STORE_CTX_get_error(xctx) != X509_V_ERR_CRL_HAS_EXPIRED || !store || !nu)
		return false;
	pthread_once(&grace_once, grace_index_init);
	if (grace_idx < 0)
		return false;
	uintptr_t grace = (uintptr_t)X509_STORE_get_ex_data(store, grace_idx);
	if (grace == 0)
		return false;
	now = (X509_VERIFY_PARAM_get_flags(vp) & X509_V_FLAG_USE_CHECK_TIME)
	          ? X509_VERIFY_PARAM_get_time(vp)
	          : time(NULL);
	limit = now - (time_t)grace;
	/* Still inside the grace period when nextUpdate is later than now - grace. */
	if (X509_cmp_time(nu, &limit) <= 0)
		return false;
	/*
	 * Marked on this verification so the verified-chain cache (vcache.c) does not keep the
	 * accept: it must be decided again each time, as the grace runs out. No grace when the
	 * mark cannot be set (fail closed: a cached accept past the grace would be worse).
	 */
	int mi = pki_crl_grace_mark_index();
	if (mi < 0 || X509_STORE_CTX_set_ex_data(xctx, mi, (void *)1) != 1)
		return false;
	X509_STORE_CTX_set_error(xctx, X509_V_OK);
	return true;
}

/* Store-level callback: used by X509_verify_cert outside a handshake (re-verification). */
static int grace_store_cb(int ok, X509_STORE_CTX *xctx)
{
	return ok || pki_crl_grace_ok(xctx);
}

int pki_store_set_crl_grace(X509_STORE *store, unsigned grace, EVP_MD_CTX *md, char *err,
                            size_t errlen)
{
	uint64_t g = grace;

	/* The grace decides which clients pass, so it is part of the trust digest. */
	if (EVP_DigestUpdate(md, "crl-grace", 9) != 1 || EVP_DigestUpdate(md, &g, sizeof(g)) != 1) {
		pki_err(err, errlen, "cannot digest the CRL grace period");
		return -1;
	}
	if (grace == 0)
		return 0;
	pthread_once(&grace_once, grace_index_init);
	if (grace_idx < 0 ||
	    X509_STORE_set_ex_data(store, grace_idx, (void *)(uintptr_t)grace) != 1) {
		pki_err(err, errlen, "cannot attach the CRL grace period");
		return -1;
	}
	X509_STORE_set_verify_cb(store, grace_store_cb);
	return 0;
}
