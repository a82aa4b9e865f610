/*
 * Revocation for the tooling CA: revoke (index only), CRL generation from the index, and
 * the list view. A CRL is always rebuilt from the whole index, so it can be regenerated
 * at any time (for a new nextUpdate) without losing an entry.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "pki_int.h"

#define CRL_DEFAULT_DAYS 30

static const struct {
	enum pki_crl_reason code;
	const char *name;
} crl_reasons[] = {
    {PKI_CRL_UNSPECIFIED, "unspecified"},
    {PKI_CRL_KEY_COMPROMISE, "keyCompromise"},
    {PKI_CRL_CA_COMPROMISE, "cACompromise"},
    {PKI_CRL_AFFILIATION_CHANGED, "affiliationChanged"},
    {PKI_CRL_SUPERSEDED, "superseded"},
    {PKI_CRL_CESSATION_OF_OPERATION, "cessationOfOperation"},
    {PKI_CRL_PRIVILEGE_WITHDRAWN, "privilegeWithdrawn"},
};

const char *pki_crl_reason_str(enum pki_crl_reason r)
{
	for (size_t i = 0; i < sizeof(crl_reasons) / sizeof(crl_reasons[0]); i++)
		if (crl_reasons[i].code == r)
			return crl_reasons[i].name;
	return "unspecified";
}

int pki_crl_reason_parse(const char *name, enum pki_crl_reason *out)
{
	/* Case-insensitive: operators type "keycompromise" as often as the RFC spelling. */
	for (size_t i = 0; i < sizeof(crl_reasons) / sizeof(crl_reasons[0]); i++) {
		if (strcasecmp(crl_reasons[i].name, name) == 0) {
			*out = crl_reasons[i].code;
			return 0;
		}
	}
	return -1;
}

static int asn1_time_set(ASN1_TIME **t, time_t when)
{
	ASN1_TIME *v = ASN1_TIME_set(NULL, when);
	if (!v)
		return -1;
	ASN1_TIME_free(*t);
	*t = v;
	return 0;
}

/* One revoked entry: serial, date and (unless unspecified) the reasonCode extension. */
static int crl_add_entry(X509_CRL *crl, const struct pki_ca_entry *e)
{
	X509_REVOKED *r = X509_REVOKED_new();
	BIGNUM *bn = NULL;
	ASN1_INTEGER *sn = NULL;
	ASN1_TIME *t = NULL;
	ASN1_ENUMERATED *code = NULL;
	int ok = 0;

	if (!r || !BN_hex2bn(&bn, e->serial_hex) || !(sn = BN_to_ASN1_INTEGER(bn, NULL)) ||
	    !X509_REVOKED_set_serialNumber(r, sn) || asn1_time_set(&t, e->revoked_at) < 0 ||
	    !X509_REVOKED_set_revocationDate(r, t))
		goto fail;
	if (e->reason != PKI_CRL_UNSPECIFIED &&
	    (!(code = ASN1_ENUMERATED_new()) || !ASN1_ENUMERATED_set(code, (long)e->reason) ||
	     X509_REVOKED_add1_ext_i2d(r, NID_crl_reason, code, 0, 0) != 1))
		goto fail;
	if (!X509_CRL_add0_revoked(crl, r))
		goto fail;
	r = NULL;
	ok = 1;
fail:
	ASN1_ENUMERATED_free(code);
	ASN1_TIME_free(t);
	ASN1_INTEGER_free(sn);
	BN_free(bn);
	X509_REVOKED_free(r);
	return ok ? 0 : -1;
}

/* crlNumber and authorityKeyIdentifier, which RFC 5280 requires of a conforming CRL. */
static int crl_exts(X509_CRL *crl, X509 *ca, unsigned long number)
{
	ASN1_INTEGER *num = ASN1_INTEGER_new();
	X509V3_CTX v3;
	X509_EXTENSION *aki = NULL;
	int ok = num && ASN1_INTEGER_set_uint64(num, number) &&
	         X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0) == 1;

	ASN1_INTEGER_free(num);
	if (!ok)
		return -1;
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, ca, NULL, NULL, crl, 0);
	aki = X509V3_EXT_conf_nid(NULL, &v3, NID_authority_key_identifier, "keyid:always");
	ok = aki && X509_CRL_add_ext(crl, aki, -1) == 1;
	X509_EXTENSION_free(aki);
	return ok ? 0 : -1;
}

static X509_CRL *crl_build(X509 *ca, EVP_PKEY *key, const struct pki_ca_index *idx,
                           unsigned long number, unsigned days, time_t now)
{
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *t = NULL;
	time_t next = now + (time_t)(days ? days : CRL_DEFAULT_DAYS) * 86400;

	if (!crl || !X509_CRL_set_version(crl, X509_CRL_VERSION_2) ||
	    !X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca)) ||
	    asn1_time_set(&t, now) < 0 || !X509_CRL_set1_lastUpdate(crl, t) ||
	    asn1_time_set(&t, next) < 0 || !X509_CRL_set1_nextUpdate(crl, t))
		goto fail;
	for (size_t i = 0; i < idx->n; i++)
		if (idx->v[i].revoked && crl_add_entry(crl, &idx->v[i]) < 0)
			goto fail;
	if (!X509_CRL_sort(crl) || crl_exts(crl, ca, number) < 0 ||
	    X509_CRL_sign(crl, key, pki_sign_md(key)) <= 0)
		goto fail;
	ASN1_TIME_free(t);
	return crl;
fail:
	ASN1_TIME_free(t);
	X509_CRL_free(crl);
	return NULL;
}

int pki_ca_crl_write(const char *dir, X509 *ca, EVP_PKEY *key, const struct pki_ca_index *idx,
                     unsigned long number, unsigned days, time_t now, char *err, size_t errlen)
{
	char path[PKI_CA_PATH_MAX], *pem = NULL;
	size_t len = 0;
	X509_CRL *crl;
	int rc = -1;

	if (pki_ca_path(path, sizeof(path), dir, "crl.pem", err, errlen) < 0)
		return -1;
	crl = crl_build(ca, key, idx, number, days, now);
	if (!crl) {
		pki_err(err, errlen, "%s: cannot build the CRL", path);
		return -1;
	}
	if (pki_pem_crl(crl, &pem, &len) < 0)
		pki_err(err, errlen, "%s: cannot encode the CRL", path);
	else
		rc = pki_file_write_atomic(path, pem, len, 0644, false, err, errlen);
	free(pem);
	X509_CRL_free(crl);
	return rc;
}

int pki_crl_generate(const char *dir, unsigned days, time_t now, char *err, size_t errlen)
{
	struct pki_ca_index idx = {0};
	X509 *ca = NULL;
	EVP_PKEY *key = NULL;
	int lock, rc = -1;

	if ((lock = pki_ca_lock(dir, true, err, errlen)) < 0)
		return -1;
	if (pki_ca_load(dir, &ca, &key, err, errlen) < 0 ||
	    pki_ca_index_load(dir, &idx, err, errlen) < 0)
		goto fail;
	/*
	 * The counter is saved before the CRL is written: a crash in between skips a number,
	 * which RFC 5280 allows, where the other order could give two different CRLs one.
	 */
	unsigned long number = idx.crl_number++;
	if (pki_ca_index_save(dir, &idx, err, errlen) < 0)
		goto fail;
	rc = pki_ca_crl_write(dir, ca, key, &idx, number, days, now, err, errlen);
fail:
	pki_ca_index_clear(&idx);
	X509_free(ca);
	EVP_PKEY_free(key);
	pki_ca_unlock(lock);
	return rc;
}

/* The serial of a PEM certificate file, which must carry this CA's signature. */
static int serial_from_file(const char *file, X509 *ca, char *serial, size_t cap, char *err,
                            size_t errlen)
{
	BIO *b = BIO_new_file(file, "r");
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIGNUM *bn = NULL;
	char *hex = NULL;
	int rc = -1;

	BIO_free(b);
	if (!x) {
		pki_err(err, errlen, "%s: cannot read certificate", file);
		return -1;
	}
	if (X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(ca)) != 0 ||
	    X509_verify(x, X509_get0_pubkey(ca)) != 1) {
		pki_err(err, errlen, "%s: not issued by this CA", file);
		goto fail;
	}
	if (!(bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL)) || !(hex = BN_bn2hex(bn)) ||
	    strlen(hex) >= cap) {
		pki_err(err, errlen, "%s: cannot read serial number", file);
		goto fail;
	}
	strcpy(serial, hex);
	rc = 0;
fail:
	OPENSSL_free(hex);
	BN_free(bn);
	X509_free(x);
	return rc;
}

/* A serial is hex only; anything else names a file. */
static int revoke_target(const char *dir, const char *what, char *serial, size_t cap, char *err,
                         size_t errlen)
{
	X509 *ca = NULL;
	EVP_PKEY *key = NULL;
	int rc;

	if (pki_serial_normalize(what, serial, cap) == 0)
		return 0;
	if (pki_ca_load(dir, &ca, &key, err, errlen) < 0)
		return -1;
	rc = serial_from_file(what, ca, serial, cap, err, errlen);
	X509_free(ca);
	EVP_PKEY_free(key);
	return rc;
}

int pki_revoke(const char *dir, const char *what, enum pki_crl_reason reason, time_t now,
               char serial_out[PKI_SERIAL_HEX_MAX], char *err, size_t errlen)
{
	struct pki_ca_index idx = {0};
	struct pki_ca_entry *e;
	char serial[PKI_SERIAL_HEX_MAX];
	int lock, rc = -1;

	if (!dir || !what) {
		pki_err(err, errlen, "revoke needs a CA directory and a serial or file");
		return -1;
	}
	if ((lock = pki_ca_lock(dir, true, err, errlen)) < 0)
		return -1;
	if (revoke_target(dir, what, serial, sizeof(serial), err, errlen) < 0 ||
	    pki_ca_index_load(dir, &idx, err, errlen) < 0)
		goto fail;
	if (!(e = pki_ca_index_find(&idx, serial))) {
		pki_err(err, errlen, "serial %s is not in %s/index.txt", serial, dir);
		goto fail;
	}
	if (e->revoked) {
		pki_err(err, errlen, "serial %s is already revoked (%s)", e->serial_hex,
		        pki_crl_reason_str(e->reason));
		goto fail;
	}
	e->revoked = true;
	e->revoked_at = now;
	e->reason = reason;
	if (serial_out)
		snprintf(serial_out, PKI_SERIAL_HEX_MAX, "%s", e->serial_hex);
	rc = pki_ca_index_save(dir, &idx, err, errlen);
fail:
	pki_ca_index_clear(&idx);
	pki_ca_unlock(lock);
	return rc;
}

int pki_ca_list(const char *dir, struct pki_ca_entry **out, size_t *n, char *err, size_t errlen)
{
	struct pki_ca_index idx;
	int lock, rc;

	*out = NULL;
	*n = 0;
	if ((lock = pki_ca_lock(dir, false, err, errlen)) < 0)
		return -1;
	rc = pki_ca_index_load(dir, &idx, err, errlen);
	pki_ca_unlock(lock);
	if (rc < 0)
		return -1;
	*out = idx.v; /* ownership of the entries moves to the caller */
	*n = idx.n;
	return 0;
}

void pki_ca_list_free(struct pki_ca_entry *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].cn);
	free(v);
}
