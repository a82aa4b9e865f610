/*
 * Certificate identity: certificates are built here in C (self-signed EC leaves are
 * enough, nothing is verified) so each identity rule has a certificate shaped for it.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "authn.h"
#include "cu.h"

#define NOT_AFTER ((time_t)2000000000) /* 2033-05-18T03:33:20Z */

static EVP_PKEY *test_key;

static int suite_init(void)
{
	test_key = EVP_EC_gen("P-256");
	return test_key ? 0 : -1;
}

static int suite_clean(void)
{
	EVP_PKEY_free(test_key);
	return 0;
}

struct cert_shape {
	const char *cn[2];   /* up to two CN entries, in order */
	const char *san;     /* X509v3 config syntax, e.g. "URI:...,DNS:..." */
	const char *bc;      /* basicConstraints, e.g. "critical,CA:TRUE" */
	const char *raw_dns; /* DNS SAN given as raw bytes (may hold a NUL) */
	size_t raw_dns_len;
	const char *raw_cn; /* CN given as raw UTF8String bytes */
	size_t raw_cn_len;
};

static int ext_add(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
	int ok = ext && X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

static int raw_dns_add(X509 *x, const char *bytes, size_t len)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	GENERAL_NAME *g = GENERAL_NAME_new();
	ASN1_IA5STRING *s = ASN1_IA5STRING_new();
	int ok = gens && g && s && ASN1_STRING_set(s, bytes, (int)len);

	if (ok) {
		GENERAL_NAME_set0_value(g, GEN_DNS, s);
		s = NULL;
		ok = sk_GENERAL_NAME_push(gens, g) > 0;
		if (ok)
			g = NULL;
	}
	ok = ok && X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) == 1;
	ASN1_IA5STRING_free(s);
	GENERAL_NAME_free(g);
	GENERAL_NAMES_free(gens);
	return ok ? 0 : -1;
}

static int names_set(X509 *x, const struct cert_shape *s)
{
	X509_NAME *nm = X509_get_subject_name(x);
	int ok = X509_NAME_add_entry_by_txt(nm, "O", MBSTRING_ASC, (const unsigned char *)"Example",
	                                    -1, -1, 0);

	for (int i = 0; i < 2 && s->cn[i]; i++)
		ok = ok && X509_NAME_add_entry_by_NID(nm, NID_commonName, MBSTRING_UTF8,
		                                      (const unsigned char *)s->cn[i], -1, -1, 0);
	if (s->raw_cn)
		ok = ok && X509_NAME_add_entry_by_NID(nm, NID_commonName, V_ASN1_UTF8STRING,
		                                      (const unsigned char *)s->raw_cn,
		                                      (int)s->raw_cn_len, -1, 0);
	return ok && X509_set_issuer_name(x, nm) ? 0 : -1;
}

/* A self-signed leaf of the given shape, re-parsed from DER like a peer certificate. */
static X509 *cert_make(const struct cert_shape *s)
{
	X509 *x = X509_new(), *parsed = NULL;
	unsigned char *der = NULL;
	int ok = x && X509_set_version(x, X509_VERSION_3) &&
	         ASN1_INTEGER_set(X509_get_serialNumber(x), 0x1a2b3c) &&
	         X509_gmtime_adj(X509_getm_notBefore(x), 0) &&
	         ASN1_TIME_set(X509_getm_notAfter(x), NOT_AFTER) && X509_set_pubkey(x, test_key) &&
	         names_set(x, s) == 0;

	ok = ok && (!s->bc || ext_add(x, NID_basic_constraints, s->bc) == 0);
	ok = ok && (!s->san || ext_add(x, NID_subject_alt_name, s->san) == 0);
	ok = ok && (!s->raw_dns || raw_dns_add(x, s->raw_dns, s->raw_dns_len) == 0);
	ok = ok && X509_sign(x, test_key, EVP_sha256()) > 0;
	int n = ok ? i2d_X509(x, &der) : -1;
	if (n > 0) {
		const unsigned char *p = der;
		parsed = d2i_X509(NULL, &p, n);
	}
	OPENSSL_free(der);
	X509_free(x);
	return parsed;
}

static void test_full_identity(void)
{
	const struct cert_shape s = {
	    .cn = {"web"},
	    .san = "URI:spiffe://example.org/ns/prod/sa/web,DNS:web.example.org,"
	           "DNS:alt.example.org,email:ops@example.org",
	    .bc = "critical,CA:FALSE",
	};
	X509 *x = cert_make(&s);
	struct authn_cert_id id;
	unsigned char md[32];
	unsigned int mdlen = 0;
	char err[128] = "", hex[65];

	CU_ASSERT_FATAL(x != NULL);
	CU_ASSERT_EQUAL_FATAL(authn_cert_id_from_x509(&id, x, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(id.cn, "web");
	CU_ASSERT_STRING_EQUAL(id.spiffe_id, "spiffe://example.org/ns/prod/sa/web");
	CU_ASSERT_STRING_EQUAL(authn_cert_id_name(&id), "spiffe://example.org/ns/prod/sa/web");
	CU_ASSERT_STRING_EQUAL(id.subject, "CN=web,O=Example"); /* RFC 2253: most specific first */
	CU_ASSERT_STRING_EQUAL(id.issuer, "CN=web,O=Example");
	CU_ASSERT_STRING_EQUAL(id.serial_hex, "1A2B3C");
	CU_ASSERT_FATAL(id.n_dns == 2 && id.n_uri == 1 && id.n_email == 1);
	CU_ASSERT_STRING_EQUAL(id.san_dns[0], "web.example.org");
	CU_ASSERT_STRING_EQUAL(id.san_dns[1], "alt.example.org");
	CU_ASSERT_STRING_EQUAL(id.san_email[0], "ops@example.org");
	CU_ASSERT_EQUAL(id.not_after, NOT_AFTER);
	CU_ASSERT_FATAL(X509_digest(x, EVP_sha256(), md, &mdlen) == 1 && mdlen == 32);
	CU_ASSERT_EQUAL(memcmp(md, id.sha256, 32), 0);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	CU_ASSERT_STRING_EQUAL(id.sha256_hex, hex);
	authn_cert_id_clear(&id);
	CU_ASSERT_PTR_NULL(id.cn);
	CU_ASSERT_EQUAL(id.n_dns, 0);
	authn_cert_id_clear(&id); /* twice is safe */
	X509_free(x);
}

/* SPIFFE ID presence by certificate shape (X509-SVID rules). */
static void test_spiffe_rules(void)
{
	const struct {
		struct cert_shape s;
		const char *spiffe; /* expected, NULL = none */
		size_t n_uri;
		const char *name;
	} cases[] = {
	    {{.cn = {"a"}, .san = "URI:spiffe://td/x"}, "spiffe://td/x", 1, "spiffe://td/x"},
	    {{.cn = {"a"}, .san = "URI:spiffe://td/x,URI:spiffe://td/y"}, NULL, 2, "a"},
	    {{.cn = {"a"}, .san = "URI:spiffe://td/x,URI:https://td/y"}, NULL, 2, "a"},
	    {{.cn = {"a"}, .san = "URI:spiffe://td/x", .bc = "critical,CA:TRUE"}, NULL, 1, "a"},
	    {{.cn = {"a"}, .san = "URI:spiffe://td/x", .bc = "CA:FALSE"},
	     "spiffe://td/x",
	     1,
	     "spiffe://td/x"},
	    {{.cn = {"a"}, .san = "URI:spiffe://TD/x"}, NULL, 1, "a"},
	    {{.cn = {"a"}, .san = "URI:spiffe://td/x/../y"}, NULL, 1, "a"},
	    {{.cn = {"a"}, .san = "URI:https://td/x"}, NULL, 1, "a"},
	    {{.cn = {"a"}, .san = "DNS:a.example"}, NULL, 0, "a"},
	    {{.cn = {"first", "second"}}, NULL, 0, "second"}, /* the last CN counts */
	    {{.cn = {NULL}}, NULL, 0, NULL},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		X509 *x = cert_make(&cases[i].s);
		struct authn_cert_id id;
		char err[128] = "";
		CU_ASSERT_FATAL(x != NULL);
		CU_ASSERT_EQUAL_FATAL(authn_cert_id_from_x509(&id, x, err, sizeof(err)), 0);
		if (cases[i].spiffe) {
			CU_ASSERT_STRING_EQUAL(id.spiffe_id ? id.spiffe_id : "", cases[i].spiffe);
		} else {
			CU_ASSERT_PTR_NULL(id.spiffe_id);
		}
		CU_ASSERT_EQUAL(id.n_uri, cases[i].n_uri);
		const char *name = authn_cert_id_name(&id);
		if (cases[i].name) {
			CU_ASSERT_STRING_EQUAL(name ? name : "", cases[i].name);
		} else {
			CU_ASSERT_PTR_NULL(name);
		}
		authn_cert_id_clear(&id);
		X509_free(x);
	}
}

/* Identity strings with NULs or control characters are refused outright. */
static void test_refused(void)
{
	const struct cert_shape cases[] = {
	    {.raw_cn = "admin\0.evil", .raw_cn_len = 11},
	    {.raw_cn = "admin\n", .raw_cn_len = 6},
	    {.raw_cn = "a\xc2\x85"
	               "b",
	     .raw_cn_len = 4}, /* UTF-8 NEL */
	    {.cn = {"ok"}, .raw_dns = "svc.example.org\0.evil", .raw_dns_len = 21},
	    {.cn = {"ok"}, .raw_dns = "svc\x1b[31m", .raw_dns_len = 8},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		X509 *x = cert_make(&cases[i]);
		struct authn_cert_id id;
		char err[128] = "";
		CU_ASSERT_FATAL(x != NULL);
		CU_ASSERT_EQUAL(authn_cert_id_from_x509(&id, x, err, sizeof(err)), -1);
		CU_ASSERT(err[0] != '\0');
		CU_ASSERT_PTR_NULL(id.cn);
		CU_ASSERT_PTR_NULL(id.san_dns);
		authn_cert_id_clear(&id);
		X509_free(x);
	}
	/* A clean raw CN of the same construction is accepted (the refusal is the bytes). */
	const struct cert_shape fine = {.raw_cn = "admin", .raw_cn_len = 5};
	X509 *x = cert_make(&fine);
	struct authn_cert_id id;
	CU_ASSERT_FATAL(x != NULL);
	CU_ASSERT_EQUAL(authn_cert_id_from_x509(&id, x, NULL, 0), 0);
	CU_ASSERT_STRING_EQUAL(id.cn ? id.cn : "", "admin");
	authn_cert_id_clear(&id);
	X509_free(x);
	CU_ASSERT_EQUAL(authn_cert_id_from_x509(&id, NULL, NULL, 0), -1);
	CU_ASSERT_PTR_NULL(authn_cert_id_name(NULL));
}

static void test_spiffe_valid(void)
{
	static char long_ok[2049], long_bad[2050];
	const struct {
		const char *s;
		size_t len; /* 0 = strlen */
		bool ok;
	} cases[] = {
	    {"spiffe://example.org", 0, true},
	    {"spiffe://example.org/ns/prod/sa/web", 0, true},
	    {"spiffe://a-b_c.d/x.y-z_W/...", 0, true},
	    {"", 0, false},
	    {"spiffe://", 0, false},
	    {"spiffe:///a", 0, false},
	    {"SPIFFE://example.org", 0, false},
	    {"spiffe://Example.org", 0, false},
	    {"spiffe://example.org/", 0, false},
	    {"spiffe://example.org//a", 0, false},
	    {"spiffe://example.org/a/", 0, false},
	    {"spiffe://example.org/./a", 0, false},
	    {"spiffe://example.org/../a", 0, false},
	    {"spiffe://example.org/a/..", 0, false},
	    {"spiffe://example.org:443/a", 0, false},
	    {"spiffe://user@example.org/a", 0, false},
	    {"spiffe://example.org/a?x=1", 0, false},
	    {"spiffe://example.org/a#f", 0, false},
	    {"spiffe://example.org/a%20b", 0, false},
	    {"spiffe://example.org/a b", 0, false},
	    {"spiffe://example.org/a\0b", 21, false},
	    {"http://example.org/a", 0, false},
	    {long_ok, 0, true},
	    {long_bad, 0, false},
	};

	memcpy(long_ok, "spiffe://td/", 12);
	memset(long_ok + 12, 'a', 2048 - 12);
	memcpy(long_bad, long_ok, 2048);
	long_bad[2048] = 'a';
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].s);
		bool got = authn_spiffe_id_valid(cases[i].s, len);
		if (got != cases[i].ok)
			fprintf(stderr, "spiffe_valid case %zu: got %d\n", i, got);
		CU_ASSERT_EQUAL(got, cases[i].ok);
	}
	CU_ASSERT_FALSE(authn_spiffe_id_valid(NULL, 0));
}

CU_SUITE(authn_cert, suite_init, suite_clean, {"full_identity", test_full_identity},
         {"spiffe_rules", test_spiffe_rules}, {"refused", test_refused},
         {"spiffe_valid", test_spiffe_valid})
