/*
 * certgen: the small private CA behind `gatewayctl pki`. Keys and certificates are made
 * with the OpenSSL API directly (no openssl.cnf, so nothing from the system config can
 * add or alter an extension). Names and SANs supplied by the operator are set as typed
 * values, never pasted into an extension config string.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "pki_int.h"

#define CA_DEFAULT_CN   "Gateway Client CA"
#define CA_DEFAULT_DAYS 3650
#define LEAF_DAYS       365
#define CN_MAX          64 /* RFC 5280 ub-common-name */

/* ---- small helpers ---- */

const EVP_MD *pki_sign_md(EVP_PKEY *key)
{
	return EVP_PKEY_is_a(key, "ED25519") ? NULL : EVP_sha256();
}

static EVP_PKEY *key_generate(enum pki_key_type t, bool ca)
{
	switch (t) {
	case PKI_KEY_ED25519:
		return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	case PKI_KEY_RSA:
		return EVP_RSA_gen(ca ? 3072 : 2048);
	case PKI_KEY_EC_P256:
	default:
		return EVP_EC_gen("P-256");
	}
}

/* Runs a PEM writer into memory; the buffer is NUL-terminated for convenience. */
static int pem_to_mem(BIO *bio, int ok, char **out, size_t *len)
{
	char *data = NULL;
	long n = ok ? BIO_get_mem_data(bio, &data) : 0;
	char *copy = n > 0 ? malloc((size_t)n + 1) : NULL;

	if (copy) {
		memcpy(copy, data, (size_t)n);
		copy[n] = '\0';
		*out = copy;
		*len = (size_t)n;
	}
	BIO_free(bio);
	return copy ? 0 : -1;
}

int pki_pem_cert(X509 *x, char **out, size_t *len)
{
	BIO *b = BIO_new(BIO_s_mem());
	return b ? pem_to_mem(b, PEM_write_bio_X509(b, x) == 1, out, len) : -1;
}

int pki_pem_crl(X509_CRL *crl, char **out, size_t *len)
{
	BIO *b = BIO_new(BIO_s_mem());
	return b ? pem_to_mem(b, PEM_write_bio_X509_CRL(b, crl) == 1, out, len) : -1;
}

int pki_pem_key(EVP_PKEY *key, char **out, size_t *len)
{
	BIO *b = BIO_new(BIO_s_mem());
	return b ? pem_to_mem(b, PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) == 1,
	                      out, len)
	         : -1;
}

enum pem_kind { PEM_CERT, PEM_KEY };

/* Encodes a certificate or key as PEM and writes it atomically; the buffer is wiped. */
static int write_pem(const char *path, enum pem_kind kind, X509 *x, EVP_PKEY *key, mode_t mode,
                     bool excl, char *err, size_t errlen)
{
	char *pem = NULL;
	size_t len = 0;
	int rc;

	rc = kind == PEM_KEY ? pki_pem_key(key, &pem, &len) : pki_pem_cert(x, &pem, &len);
	if (rc < 0) {
		pki_err(err, errlen, "%s: cannot encode PEM", path);
		return -1;
	}
	rc = pki_file_write_atomic(path, pem, len, mode, excl, err, errlen);
	OPENSSL_cleanse(pem, len); /* may be a private key */
	free(pem);
	return rc;
}

/* A CN we can store on one index line and print safely: printable ASCII or UTF-8. */
static int cn_valid(const char *cn)
{
	size_t n = cn ? strlen(cn) : 0;
	if (n == 0 || n > CN_MAX)
		return 0;
	for (const unsigned char *p = (const unsigned char *)cn; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

/* LDH labels (no '-' at either end) with dots; optionally one leading "*." label. */
static int dns_valid(const char *s)
{
	size_t label = 0;
	if (strncmp(s, "*.", 2) == 0)
		s += 2;
	if (strlen(s) == 0 || strlen(s) > 253)
		return 0;
	for (const char *p = s;; p++) {
		if (*p == '.' || *p == '\0') {
			if (label == 0 || p[-1] == '-')
				return 0;
			if (*p == '\0')
				return 1;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)*p) && (*p != '-' || label == 0))
			return 0;
		if (++label > 63)
			return 0;
	}
}

/* 128 random bits, top byte 0x10..0x7f: positive, and always 32 hex digits. */
static int serial_set(X509 *x, char hex[PKI_SERIAL_HEX_MAX])
{
	unsigned char b[16];
	BIGNUM *bn = NULL;
	char *h = NULL;
	int rc = -1;

	if (RAND_bytes(b, sizeof(b)) != 1)
		return -1;
	b[0] = (unsigned char)((b[0] & 0x7f) | 0x10);
	bn = BN_bin2bn(b, sizeof(b), NULL);
	if (bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) && (h = BN_bn2hex(bn)) &&
	    strlen(h) < PKI_SERIAL_HEX_MAX) {
		strcpy(hex, h);
		rc = 0;
	}
	OPENSSL_free(h);
	BN_free(bn);
	return rc;
}

/* A fixed extension value (never operator input) through the v3 config parser. */
static int ext_fixed(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (!ext)
		return -1;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : -1;
}

static int gn_push(GENERAL_NAMES *gens, int type, const char *value)
{
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_IA5STRING *s = ASN1_IA5STRING_new();

	if (!gn || !s || !ASN1_STRING_set(s, value, (int)strlen(value)))
		goto fail;
	GENERAL_NAME_set0_value(gn, type, s);
	s = NULL;
	if (!sk_GENERAL_NAME_push(gens, gn))
		goto fail;
	return 0;
fail:
	ASN1_IA5STRING_free(s);
	GENERAL_NAME_free(gn);
	return -1;
}

/* subjectAltName from typed values: the SPIFFE URI first, then DNS names. */
static int ext_san(X509 *x, const struct pki_issue_opts *o)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	int rc = -1;

	if (!gens)
		return -1;
	if (o->spiffe && gn_push(gens, GEN_URI, o->spiffe) < 0)
		goto fail;
	for (size_t i = 0; i < o->n_dns; i++)
		if (gn_push(gens, GEN_DNS, o->dns[i]) < 0)
			goto fail;
	if (o->server && o->n_dns == 0 && gn_push(gens, GEN_DNS, o->cn) < 0)
		goto fail;
	rc = sk_GENERAL_NAME_num(gens) == 0 ||
	             X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) == 1
	         ? 0
	         : -1;
fail:
	GENERAL_NAMES_free(gens);
	return rc;
}

static int set_name_cn(X509 *x, const char *cn, bool issuer_too)
{
	X509_NAME *nm = X509_NAME_new();
	int ok = nm &&
	         X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
	                                    -1, 0) == 1 &&
	         X509_set_subject_name(x, nm) == 1 &&
	         (!issuer_too || X509_set_issuer_name(x, nm) == 1);
	X509_NAME_free(nm);
	return ok ? 0 : -1;
}

static int set_validity(X509 *x, time_t nb, time_t na)
{
	return X509_time_adj_ex(X509_getm_notBefore(x), 0, 0, &nb) &&
	               X509_time_adj_ex(X509_getm_notAfter(x), 0, 0, &na)
	           ? 0
	           : -1;
}

int pki_ca_load(const char *dir, X509 **cert, EVP_PKEY **key, char *err, size_t errlen)
{
	char cp[PKI_CA_PATH_MAX], kp[PKI_CA_PATH_MAX];
	BIO *b = NULL;

	*cert = NULL;
	*key = NULL;
	if (pki_ca_path(cp, sizeof(cp), dir, "ca.crt", err, errlen) < 0 ||
	    pki_ca_path(kp, sizeof(kp), dir, "ca.key", err, errlen) < 0)
		return -1;
	if (!(b = BIO_new_file(cp, "r")) || !(*cert = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
		pki_err(err, errlen, "%s: cannot read CA certificate", cp);
		goto fail;
	}
	BIO_free(b);
	if (!(b = BIO_new_file(kp, "r")) ||
	    !(*key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL))) {
		pki_err(err, errlen, "%s: cannot read CA key", kp);
		goto fail;
	}
	BIO_free(b);
	b = NULL;
	if (X509_check_private_key(*cert, *key) != 1) {
		pki_err(err, errlen, "%s: key does not match certificate %s", kp, cp);
		goto fail;
	}
	return 0;
fail:
	BIO_free(b);
	X509_free(*cert);
	EVP_PKEY_free(*key);
	*cert = NULL;
	*key = NULL;
	return -1;
}

/* ---- init ---- */

static X509 *ca_make(const struct pki_ca_opts *o, EVP_PKEY *key, char *err, size_t errlen)
{
	X509 *x = X509_new();
	char serial[PKI_SERIAL_HEX_MAX];
	time_t nb = o->now - 60;
	time_t na = o->now + (time_t)(o->days ? o->days : CA_DEFAULT_DAYS) * 86400;

	if (!x || X509_set_version(x, X509_VERSION_3) != 1 || serial_set(x, serial) < 0 ||
	    set_name_cn(x, o->cn ? o->cn : CA_DEFAULT_CN, true) < 0 ||
	    set_validity(x, nb, na) < 0 || X509_set_pubkey(x, key) != 1 ||
	    ext_fixed(x, x, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
	    ext_fixed(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
	    ext_fixed(x, x, NID_subject_key_identifier, "hash") < 0 ||
	    X509_sign(x, key, pki_sign_md(key)) <= 0) {
		pki_err(err, errlen, "cannot build the CA certificate");
		X509_free(x);
		return NULL;
	}
	return x;
}

/* mkdir -p: the CA directory itself 0700, parents 0755. */
static int mkdir_parents(const char *dir)
{
	char p[PKI_CA_PATH_MAX];

	if (snprintf(p, sizeof(p), "%s", dir) >= (int)sizeof(p)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) != 0 && errno != EEXIST)
			return -1;
		*s = '/';
	}
	return mkdir(p, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

/* The directory must be new or empty of CA files: init never replaces a CA. */
static int ca_dir_prepare(const char *dir, char *err, size_t errlen)
{
	char p[PKI_CA_PATH_MAX];
	struct stat st;

	if (mkdir_parents(dir) != 0) {
		pki_err(err, errlen, "%s: cannot create: %s", dir, strerror(errno));
		return -1;
	}
	static const char *const owned[] = {"ca.crt", "ca.key", "index.txt"};
	for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++) {
		if (pki_ca_path(p, sizeof(p), dir, owned[i], err, errlen) < 0)
			return -1;
		if (stat(p, &st) == 0) {
			pki_err(err, errlen, "%s: already exists; a CA is never re-initialised", p);
			return -1;
		}
	}
	if (pki_ca_path(p, sizeof(p), dir, "certs", err, errlen) < 0)
		return -1;
	if (mkdir(p, 0755) != 0 && errno != EEXIST) {
		pki_err(err, errlen, "%s: cannot create: %s", p, strerror(errno));
		return -1;
	}
	return 0;
}

/* Key first (0600, never replaced), then certificate, index and the first CRL. */
static int ca_write(const char *dir, X509 *x, EVP_PKEY *key, unsigned crl_days, time_t now,
                    char *err, size_t errlen)
{
	char p[PKI_CA_PATH_MAX];
	struct pki_ca_index idx = {.crl_number = 2}; /* number 1 goes to the first CRL */
	int rc;

	if (pki_ca_path(p, sizeof(p), dir, "ca.key", err, errlen) < 0 ||
	    write_pem(p, PEM_KEY, NULL, key, 0600, true, err, errlen) < 0)
		return -1;
	if (pki_ca_path(p, sizeof(p), dir, "ca.crt", err, errlen) < 0 ||
	    write_pem(p, PEM_CERT, x, NULL, 0644, true, err, errlen) < 0)
		return -1;
	rc = pki_ca_index_save(dir, &idx, err, errlen);
	if (rc == 0)
		rc = pki_ca_crl_write(dir, x, key, &idx, 1, crl_days, now, err, errlen);
	return rc;
}

int pki_ca_init(const struct pki_ca_opts *o, char *err, size_t errlen)
{
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	int lock = -1, rc = -1;

	if (!o || !o->dir) {
		pki_err(err, errlen, "no CA directory given");
		return -1;
	}
	if (o->cn && !cn_valid(o->cn)) {
		pki_err(err, errlen, "CA name must be 1..%d printable characters", CN_MAX);
		return -1;
	}
	if (ca_dir_prepare(o->dir, err, errlen) < 0 ||
	    (lock = pki_ca_lock(o->dir, true, err, errlen)) < 0)
		return -1;
	if (!(key = key_generate(o->key, true))) {
		pki_err(err, errlen, "cannot generate the CA key");
		goto fail;
	}
	if (!(x = ca_make(o, key, err, errlen)))
		goto fail;
	rc = ca_write(o->dir, x, key, o->crl_days, o->now, err, errlen);
fail:
	X509_free(x);
	EVP_PKEY_free(key);
	pki_ca_unlock(lock);
	return rc;
}

/* ---- issue ---- */

static int issue_check(const struct pki_issue_opts *o, char *err, size_t errlen)
{
	if (!o->dir || !cn_valid(o->cn)) {
		pki_err(err, errlen,
		        "a CA directory and a CN of 1..%d printable characters are "
		        "required",
		        CN_MAX);
		return -1;
	}
	for (size_t i = 0; i < o->n_dns; i++) {
		if (!dns_valid(o->dns[i])) {
			pki_err(err, errlen, "\"%s\" is not a DNS name", o->dns[i]);
			return -1;
		}
	}
	if (o->server && o->n_dns == 0 && !dns_valid(o->cn)) {
		pki_err(err, errlen,
		        "a server certificate needs a DNS name: give --dns or a CN "
		        "that is one");
		return -1;
	}
	if (o->spiffe && (strncmp(o->spiffe, "spiffe://", 9) != 0 || !cn_valid(o->spiffe) ||
	                  strchr(o->spiffe, ' '))) {
		pki_err(err, errlen, "\"%s\" is not a spiffe:// URI", o->spiffe);
		return -1;
	}
	return 0;
}

/* Output paths: PREFIX.crt/.key, or DIR/issued/CN.* (CN made file-name safe). */
static int issue_paths(const struct pki_issue_opts *o, struct pki_issued *out, char *err,
                       size_t errlen)
{
	char base[PKI_CA_PATH_MAX];

	if (o->out_prefix) {
		snprintf(base, sizeof(base), "%s", o->out_prefix);
	} else {
		char name[CN_MAX + 1];
		size_t i = 0;
		for (const char *p = o->cn; *p && i < CN_MAX; p++)
			name[i++] = isalnum((unsigned char)*p) || strchr("-_.", *p) ? *p : '_';
		name[i] = '\0';
		if (name[0] == '.')
			name[0] = '_';
		snprintf(base, sizeof(base), "%s/issued", o->dir);
		if (mkdir(base, 0700) != 0 && errno != EEXIST) {
			pki_err(err, errlen, "%s: cannot create: %s", base, strerror(errno));
			return -1;
		}
		if (snprintf(base, sizeof(base), "%s/issued/%s", o->dir, name) >=
		    (int)sizeof(base)) {
			pki_err(err, errlen, "%s: path too long", o->dir);
			return -1;
		}
	}
	if (snprintf(out->cert_path, sizeof(out->cert_path), "%s.crt", base) >=
	        (int)sizeof(out->cert_path) ||
	    snprintf(out->key_path, sizeof(out->key_path), "%s.key", base) >=
	        (int)sizeof(out->key_path)) {
		pki_err(err, errlen, "%s: path too long", base);
		return -1;
	}
	struct stat st;
	if (stat(out->cert_path, &st) == 0 || stat(out->key_path, &st) == 0) {
		pki_err(err, errlen, "%s: already exists (not overwritten)",
		        stat(out->cert_path, &st) == 0 ? out->cert_path : out->key_path);
		return -1;
	}
	return 0;
}

static int leaf_exts(X509 *x, X509 *ca, const struct pki_issue_opts *o, EVP_PKEY *key)
{
	/* keyEncipherment only where it means something: RSA key transport (TLS 1.2). */
	const char *ku = o->server && EVP_PKEY_is_a(key, "RSA")
	                     ? "critical,digitalSignature,keyEncipherment"
	                     : "critical,digitalSignature";
	if (ext_fixed(x, ca, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    ext_fixed(x, ca, NID_key_usage, ku) < 0 ||
	    ext_fixed(x, ca, NID_ext_key_usage, o->server ? "serverAuth" : "clientAuth") < 0 ||
	    ext_fixed(x, ca, NID_subject_key_identifier, "hash") < 0 ||
	    ext_fixed(x, ca, NID_authority_key_identifier, "keyid:always") < 0)
		return -1;
	return ext_san(x, o);
}

static X509 *leaf_make(const struct pki_issue_opts *o, X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *key,
                       char serial[PKI_SERIAL_HEX_MAX], char *err, size_t errlen)
{
	X509 *x = X509_new();
	time_t nb = o->not_before ? o->not_before : o->now - 60;
	time_t na = o->not_after ? o->not_after : nb + (time_t)LEAF_DAYS * 86400;

	if (na <= nb) {
		pki_err(err, errlen, "notAfter must be later than notBefore");
		X509_free(x);
		return NULL;
	}
	if (!x || X509_set_version(x, X509_VERSION_3) != 1 || serial_set(x, serial) < 0 ||
	    set_name_cn(x, o->cn, false) < 0 ||
	    X509_set_issuer_name(x, X509_get_subject_name(ca)) != 1 ||
	    set_validity(x, nb, na) < 0 || X509_set_pubkey(x, key) != 1 ||
	    leaf_exts(x, ca, o, key) < 0 || X509_sign(x, ca_key, pki_sign_md(ca_key)) <= 0) {
		pki_err(err, errlen, "cannot build the certificate for \"%s\"", o->cn);
		X509_free(x);
		return NULL;
	}
	return x;
}

/* Index first: the CA never issues a certificate it has not recorded. */
static int issue_record(const struct pki_issue_opts *o, X509 *x, const char *serial, char *err,
                        size_t errlen)
{
	struct pki_ca_index idx;
	struct pki_ca_entry e = {.cn = (char *)o->cn};
	struct tm tm;
	int rc = -1;

	snprintf(e.serial_hex, sizeof(e.serial_hex), "%s", serial);
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1) {
		pki_err(err, errlen, "cannot read notAfter");
		return -1;
	}
	e.not_after = timegm(&tm);
	if (pki_ca_index_load(o->dir, &idx, err, errlen) < 0)
		return -1;
	if (pki_ca_index_find(&idx, serial))
		pki_err(err, errlen, "serial %s already issued (random collision)", serial);
	else if (pki_ca_index_add(&idx, &e, err, errlen) == 0)
		rc = pki_ca_index_save(o->dir, &idx, err, errlen);
	pki_ca_index_clear(&idx);
	return rc;
}

static int issue_write(const struct pki_issue_opts *o, X509 *x, EVP_PKEY *key,
                       const struct pki_issued *out, char *err, size_t errlen)
{
	char p[PKI_CA_PATH_MAX], name[PKI_SERIAL_HEX_MAX + 16];

	snprintf(name, sizeof(name), "certs/%s.crt", out->serial_hex);
	if (pki_ca_path(p, sizeof(p), o->dir, name, err, errlen) < 0 ||
	    write_pem(p, PEM_CERT, x, NULL, 0644, true, err, errlen) < 0)
		return -1;
	if (write_pem(out->key_path, PEM_KEY, NULL, key, 0600, true, err, errlen) < 0)
		return -1;
	return write_pem(out->cert_path, PEM_CERT, x, NULL, 0644, true, err, errlen);
}

int pki_issue(const struct pki_issue_opts *o, struct pki_issued *out, char *err, size_t errlen)
{
	X509 *ca = NULL, *x = NULL;
	EVP_PKEY *ca_key = NULL, *key = NULL;
	int lock = -1, rc = -1;

	if (!o || !out || issue_check(o, err, errlen) < 0)
		return -1;
	memset(out, 0, sizeof(*out));
	if ((lock = pki_ca_lock(o->dir, true, err, errlen)) < 0)
		return -1;
	if (pki_ca_load(o->dir, &ca, &ca_key, err, errlen) < 0 ||
	    issue_paths(o, out, err, errlen) < 0)
		goto fail;
	if (!(key = key_generate(o->key, false))) {
		pki_err(err, errlen, "cannot generate a key");
		goto fail;
	}
	if (!(x = leaf_make(o, ca, ca_key, key, out->serial_hex, err, errlen)) ||
	    issue_record(o, x, out->serial_hex, err, errlen) < 0 ||
	    issue_write(o, x, key, out, err, errlen) < 0)
		goto fail;
	rc = 0;
fail:
	X509_free(x);
	X509_free(ca);
	EVP_PKEY_free(key);
	EVP_PKEY_free(ca_key);
	pki_ca_unlock(lock);
	return rc;
}
