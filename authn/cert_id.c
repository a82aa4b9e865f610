/*
 * Certificate identity: turns a verified leaf into the plain strings the policy, the
 * audit log and the forwarder work with. Every string is copied out of OpenSSL's
 * structures so the result outlives the X509, and every identity string is checked for
 * embedded NULs and control characters, which would otherwise let "admin\0.evil" act as
 * "admin" to C string code or forge lines in logs and headers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "authn.h"

#define SPIFFE_SCHEME     "spiffe://"
#define SPIFFE_SCHEME_LEN (sizeof(SPIFFE_SCHEME) - 1)
#define SPIFFE_MAX_LEN    2048

static void err_set(char *err, size_t errlen, const char *msg)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", msg);
}

/*
 * True if p[0..n) holds no NUL, no C0 control, no DEL and no UTF-8-encoded C1 control.
 * Why C1 too: U+0085 (NEL) and friends are line breaks to some log viewers.
 */
static bool bytes_clean(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] < 0x20 || p[i] == 0x7f)
			return false;
		if (p[i] == 0xc2 && i + 1 < n && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f)
			return false;
	}
	return true;
}

/*
 * Copies n bytes into a new NUL-terminated string in *out (caller frees).
 * Returns -1 for a negative length, unclean bytes or allocation failure.
 */
static int str_copy_checked(const unsigned char *p, long n, char **out, const char *what, char *err,
                            size_t errlen)
{
	char msg[96];

	if (n < 0 || (n > 0 && !p)) {
		snprintf(msg, sizeof(msg), "%s: unreadable string", what);
		goto fail;
	}
	if (!bytes_clean(p, (size_t)n)) {
		snprintf(msg, sizeof(msg), "%s contains NUL or control characters", what);
		goto fail;
	}
	*out = malloc((size_t)n + 1);
	if (!*out) {
		snprintf(msg, sizeof(msg), "out of memory");
		goto fail;
	}
	if (n > 0)
		memcpy(*out, p, (size_t)n);
	(*out)[n] = '\0';
	return 0;
fail:
	err_set(err, errlen, msg);
	return -1;
}

/* Copies an IA5String SAN value; ASN1_STRING_length, not strlen, so NULs are caught. */
static int asn1_copy_checked(const ASN1_STRING *s, char **out, const char *what, char *err,
                             size_t errlen)
{
	return str_copy_checked(ASN1_STRING_get0_data(s), ASN1_STRING_length(s), out, what, err,
	                        errlen);
}

/* The subject's last commonName (the most specific one, as browsers use), or none. */
static int cert_cn_get(X509 *leaf, char **out, char *err, size_t errlen)
{
	const X509_NAME *nm = X509_get_subject_name(leaf);
	unsigned char *utf8 = NULL;
	int idx = -1, last = -1;
	int rc = -1;

	while ((idx = X509_NAME_get_index_by_NID(nm, NID_commonName, idx)) >= 0)
		last = idx;
	if (last < 0)
		return 0;
	/* Why convert: BMPString/UniversalString CNs must be compared as UTF-8. */
	ASN1_STRING *d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(nm, last));
	int n = ASN1_STRING_to_UTF8(&utf8, d);
	if (n < 0) {
		err_set(err, errlen, "subject CN is not convertible to UTF-8");
		goto fail;
	}
	rc = str_copy_checked(utf8, n, out, "subject CN", err, errlen);
fail:
	OPENSSL_free(utf8);
	return rc;
}

/* RFC 2253 text of a name; OpenSSL escapes control and non-ASCII bytes as \XX. */
static int name_to_str(const X509_NAME *nm, char **out, const char *what, char *err, size_t errlen)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data = NULL;
	int rc = -1;

	if (!b || X509_NAME_print_ex(b, nm, 0, XN_FLAG_RFC2253) < 0) {
		err_set(err, errlen, "cannot print certificate name");
		goto fail;
	}
	long n = BIO_get_mem_data(b, &data);
	rc = str_copy_checked((const unsigned char *)data, n, out, what, err, errlen);
fail:
	BIO_free(b);
	return rc;
}

/* Upper-case hex of the serial number (BN_bn2hex's format, "-" prefix if negative). */
static int serial_to_hex(X509 *leaf, char **out, char *err, size_t errlen)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL;
	int rc = -1;

	if (!hex) {
		err_set(err, errlen, "cannot read serial number");
		goto fail;
	}
	rc = str_copy_checked((const unsigned char *)hex, (long)strlen(hex), out, "serial", err,
	                      errlen);
fail:
	OPENSSL_free(hex);
	BN_free(bn);
	return rc;
}

/* Appends a checked copy of s to the string vector *v of *n entries. */
static int strv_push(char ***v, size_t *n, const ASN1_STRING *s, const char *what, char *err,
                     size_t errlen)
{
	char **nv = realloc(*v, (*n + 1) * sizeof(*nv));

	if (!nv) {
		err_set(err, errlen, "out of memory");
		return -1;
	}
	*v = nv;
	if (asn1_copy_checked(s, &nv[*n], what, err, errlen) < 0)
		return -1;
	(*n)++;
	return 0;
}

/* Copies DNS, URI and email SANs in certificate order; other kinds are ignored. */
static int sans_get(X509 *leaf, struct authn_cert_id *id, char *err, size_t errlen)
{
	int crit = 0;
	GENERAL_NAMES *gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, &crit, NULL);
	int rc = -1;

	if (!gens) {
		if (crit == -1)
			return 0; /* no SAN extension at all */
		/* Why refuse: a duplicated or undecodable SAN extension is ambiguous. */
		err_set(err, errlen, "malformed or duplicate subjectAltName extension");
		return -1;
	}
	for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		int r = 0;
		if (g->type == GEN_DNS)
			r = strv_push(&id->san_dns, &id->n_dns, g->d.dNSName, "DNS SAN", err,
			              errlen);
		else if (g->type == GEN_URI)
			r = strv_push(&id->san_uri, &id->n_uri, g->d.uniformResourceIdentifier,
			              "URI SAN", err, errlen);
		else if (g->type == GEN_EMAIL)
			r = strv_push(&id->san_email, &id->n_email, g->d.rfc822Name, "email SAN",
			              err, errlen);
		if (r < 0)
			goto fail;
	}
	rc = 0;
fail:
	GENERAL_NAMES_free(gens);
	return rc;
}

/* SHA-256 over the DER, raw and as lower-case hex (the form policy rules are written in). */
static int fingerprint_get(X509 *leaf, struct authn_cert_id *id, char *err, size_t errlen)
{
	static const char hexd[] = "0123456789abcdef";
	unsigned int mdlen = 0;

	if (!X509_digest(leaf, EVP_sha256(), id->sha256, &mdlen) || mdlen != sizeof(id->sha256)) {
		err_set(err, errlen, "cannot compute certificate SHA-256");
		return -1;
	}
	for (size_t i = 0; i < sizeof(id->sha256); i++) {
		id->sha256_hex[2 * i] = hexd[id->sha256[i] >> 4];
		id->sha256_hex[2 * i + 1] = hexd[id->sha256[i] & 0xf];
	}
	id->sha256_hex[64] = '\0';
	return 0;
}

/* notAfter as a UTC time_t. */
static int not_after_get(X509 *leaf, struct authn_cert_id *id, char *err, size_t errlen)
{
	const ASN1_TIME *t = X509_get0_notAfter(leaf);
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (!t || !ASN1_TIME_to_tm(t, &tm)) {
		err_set(err, errlen, "cannot read notAfter");
		return -1;
	}
	id->not_after = timegm(&tm);
	return 0;
}

/*
 * X509-SVID: the SPIFFE ID counts only if it is the certificate's one URI SAN, is well
 * formed, and the leaf is not a CA. Why so strict: a second URI SAN or a CA leaf makes
 * "which workload is this" ambiguous, and the spec says to reject such SVIDs.
 */
static int spiffe_get(X509 *leaf, struct authn_cert_id *id, char *err, size_t errlen)
{
	if (id->n_uri != 1)
		return 0;
	const char *u = id->san_uri[0];
	if (!authn_spiffe_id_valid(u, strlen(u)) || X509_check_ca(leaf) != 0)
		return 0;
	return str_copy_checked((const unsigned char *)u, (long)strlen(u), &id->spiffe_id,
	                        "SPIFFE ID", err, errlen);
}

/*
 * Fills *out from a verified leaf (see authn.h). Builds into a local and publishes only
 * on success; on failure *out is zeroed and err says why.
 */
int authn_cert_id_from_x509(struct authn_cert_id *out, X509 *leaf, char *err, size_t errlen)
{
	struct authn_cert_id id;

	memset(&id, 0, sizeof(id));
	memset(out, 0, sizeof(*out));
	if (!leaf) {
		err_set(err, errlen, "no certificate");
		goto fail;
	}
	if (cert_cn_get(leaf, &id.cn, err, errlen) < 0 ||
	    name_to_str(X509_get_subject_name(leaf), &id.subject, "subject", err, errlen) < 0 ||
	    name_to_str(X509_get_issuer_name(leaf), &id.issuer, "issuer", err, errlen) < 0 ||
	    serial_to_hex(leaf, &id.serial_hex, err, errlen) < 0 ||
	    sans_get(leaf, &id, err, errlen) < 0 || fingerprint_get(leaf, &id, err, errlen) < 0 ||
	    not_after_get(leaf, &id, err, errlen) < 0 || spiffe_get(leaf, &id, err, errlen) < 0)
		goto fail;
	*out = id;
	return 0;
fail:
	authn_cert_id_clear(&id);
	return -1;
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Frees every string of *id and zeroes it; safe to call twice. */
void authn_cert_id_clear(struct authn_cert_id *id)
{
	if (!id)
		return;
	free(id->spiffe_id);
	free(id->cn);
	free(id->subject);
	free(id->issuer);
	free(id->serial_hex);
	strv_free(id->san_dns, id->n_dns);
	strv_free(id->san_uri, id->n_uri);
	strv_free(id->san_email, id->n_email);
	memset(id, 0, sizeof(*id));
}

/* SPIFFE ID if present, else CN, else NULL; borrowed from id. */
const char *authn_cert_id_name(const struct authn_cert_id *id)
{
	if (!id)
		return NULL;
	return id->spiffe_id ? id->spiffe_id : id->cn;
}

static bool spiffe_td_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

static bool spiffe_path_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-' || c == '_';
}

/*
 * True if s[0..len) is a SPIFFE ID: "spiffe://" + lower-case trust domain + optional
 * "/seg" path segments. The character sets leave no room for a port, userinfo, query,
 * fragment or percent-encoding, so two spellings of one ID cannot exist.
 */
bool authn_spiffe_id_valid(const char *s, size_t len)
{
	size_t i = SPIFFE_SCHEME_LEN;

	if (!s || len > SPIFFE_MAX_LEN || len <= SPIFFE_SCHEME_LEN ||
	    memcmp(s, SPIFFE_SCHEME, SPIFFE_SCHEME_LEN) != 0)
		return false;
	while (i < len && s[i] != '/') {
		if (!spiffe_td_char((unsigned char)s[i]))
			return false;
		i++;
	}
	if (i == SPIFFE_SCHEME_LEN)
		return false; /* empty trust domain */
	while (i < len) {
		size_t start = ++i; /* skip the '/' */
		while (i < len && s[i] != '/') {
			if (!spiffe_path_char((unsigned char)s[i]))
				return false;
			i++;
		}
		size_t n = i - start;
		/* Why: empty, "." and ".." segments make two spellings of one workload. */
		if (n == 0 || (n == 1 && s[start] == '.') ||
		    (n == 2 && s[start] == '.' && s[start + 1] == '.'))
			return false;
	}
	return true;
}
