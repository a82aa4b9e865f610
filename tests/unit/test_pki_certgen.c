/*
 * Unit tests of the CA tooling (certgen.c, ca_index.c, ca_crl.c) and of the trust-file
 * freshness helpers (fresh.c). Each test works in its own temporary CA directory; the
 * certificates made are checked with plain OpenSSL calls, and revocation and the CRL
 * grace period with X509_verify_cert against the very trust store pki_server_new builds
 * for handshakes. Only the public pki.h is used.
 */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "cu.h"
#include "pki.h"

#define DAY 86400L

static char dir[256];
static const time_t now0 = 1750000000; /* fixed clock: 2025-06-15 */

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return remove(p);
}

static void tmp_reset(void)
{
	if (dir[0])
		nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	snprintf(dir, sizeof(dir), "/tmp/test_certgen.XXXXXX");
	if (!mkdtemp(dir))
		dir[0] = '\0';
}

static int suite_clean(void)
{
	if (dir[0])
		nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

static const char *path_in(const char *name)
{
	static char ring[8][512];
	static unsigned next;
	char *p = ring[next++ % 8];
	snprintf(p, sizeof(ring[0]), "%s/%s", dir, name);
	return p;
}

static X509 *cert_read(const char *path)
{
	FILE *f = fopen(path, "r");
	X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	return x;
}

static EVP_PKEY *key_read(const char *path)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	return k;
}

static X509_CRL *crl_read(const char *path)
{
	FILE *f = fopen(path, "r");
	X509_CRL *c = f ? PEM_read_X509_CRL(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	return c;
}

static mode_t mode_of(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (st.st_mode & 07777) : (mode_t)-1;
}

static int ca_init(enum pki_key_type kt)
{
	char err[512] = "";
	struct pki_ca_opts o = {.dir = dir, .cn = "Unit CA", .key = kt, .now = now0};
	int rc = pki_ca_init(&o, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "ca_init: %s\n", err);
	return rc;
}

static int issue(const char *cn, bool server, struct pki_issued *out)
{
	char err[512] = "";
	struct pki_issue_opts o = {.dir = dir, .cn = cn, .server = server, .now = now0};
	int rc = pki_issue(&o, out, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "issue %s: %s\n", cn, err);
	return rc;
}

/* A server certificate for the listener contexts verify_at builds (issued once per CA). */
static int server_cert(void)
{
	struct pki_issued out;
	if (access(path_in("issued/srv.crt"), R_OK) == 0)
		return 0;
	return issue("srv", true, &out);
}

/*
 * Verifies leaf at time `at` against the trust store of a real listener context built
 * from the CA dir's ca.crt (+ crl.pem when crl) with the given CRL grace.
 */
static int verify_at(X509 *leaf, bool crl, unsigned grace, time_t at, int *x509_err)
{
	const char *crls[] = {path_in("crl.pem")};
	struct pki_server_opts o = {.cert_file = path_in("issued/srv.crt"),
	                            .key_file = path_in("issued/srv.key"),
	                            .client_ca_file = path_in("ca.crt"),
	                            .crl_files = crls,
	                            .n_crl_files = crl ? 1 : 0,
	                            .require_client_cert = true,
	                            .crl_grace = grace};
	struct pki_server *srv = NULL;
	X509_STORE *store = NULL;
	X509_STORE_CTX *xctx = X509_STORE_CTX_new();
	char err[256] = "";
	int ok = -1;

	if (server_cert() == 0 && pki_server_new(&o, &srv, err, sizeof(err)) == 0 &&
	    SSL_CTX_get0_verify_cert_store(pki_server_get0_ctx(srv), &store) == 1 && xctx &&
	    X509_STORE_CTX_init(xctx, store, leaf, NULL) == 1) {
		X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(xctx), at);
		ok = X509_verify_cert(xctx);
		*x509_err = X509_STORE_CTX_get_error(xctx);
	} else {
		fprintf(stderr, "verify_at: %s\n", err);
	}
	X509_STORE_CTX_free(xctx);
	pki_server_free(srv);
	return ok;
}

/* ---- init ---- */

static void test_init_files(void)
{
	tmp_reset();
	CU_ASSERT_FATAL(ca_init(PKI_KEY_EC_P256) == 0);
	X509 *ca = cert_read(path_in("ca.crt"));
	EVP_PKEY *key = key_read(path_in("ca.key"));
	X509_CRL *crl = crl_read(path_in("crl.pem"));
	CU_ASSERT_FATAL(ca && key && crl);
	CU_ASSERT(X509_check_ca(ca) == 1);
	CU_ASSERT(X509_get_key_usage(ca) == (KU_KEY_CERT_SIGN | KU_CRL_SIGN));
	CU_ASSERT(X509_check_private_key(ca, key) == 1);
	CU_ASSERT(X509_verify(ca, key) == 1);
	CU_ASSERT(mode_of(path_in("ca.key")) == 0600);
	CU_ASSERT(X509_CRL_verify(crl, X509_get0_pubkey(ca)) == 1);
	CU_ASSERT(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)) <= 0); /* none: no list at all */
	time_t nu = 0;
	CU_ASSERT(pki_crl_file_next_update(path_in("crl.pem"), &nu, NULL, 0) == 0);
	CU_ASSERT(nu == now0 + 30 * DAY);
	/* A second init never replaces a CA. */
	char err[256] = "";
	struct pki_ca_opts o = {.dir = dir, .now = now0};
	CU_ASSERT(pki_ca_init(&o, err, sizeof(err)) == -1);
	CU_ASSERT(strstr(err, "already exists") != NULL);
	X509_free(ca);
	EVP_PKEY_free(key);
	X509_CRL_free(crl);
}

/* Every key type signs leaves that verify and whose key matches. */
static void test_key_types(void)
{
	static const struct {
		enum pki_key_type kt;
		const char *alg;
	} rows[] = {{PKI_KEY_EC_P256, "EC"}, {PKI_KEY_ED25519, "ED25519"}, {PKI_KEY_RSA, "RSA"}};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		tmp_reset();
		CU_ASSERT_FATAL(ca_init(rows[i].kt) == 0);
		char err[256] = "";
		struct pki_issued out;
		struct pki_issue_opts o = {
		    .dir = dir, .cn = "leaf", .key = rows[i].kt, .now = now0};
		CU_ASSERT_FATAL(pki_issue(&o, &out, err, sizeof(err)) == 0);
		X509 *ca = cert_read(path_in("ca.crt")), *x = cert_read(out.cert_path);
		EVP_PKEY *k = key_read(out.key_path);
		CU_ASSERT_FATAL(ca && x && k);
		if (!EVP_PKEY_is_a(X509_get0_pubkey(ca), rows[i].alg) ||
		    !EVP_PKEY_is_a(k, rows[i].alg))
			CU_FAIL(rows[i].alg);
		CU_ASSERT(X509_verify(x, X509_get0_pubkey(ca)) == 1);
		CU_ASSERT(X509_check_private_key(x, k) == 1);
		int e = 0;
		CU_ASSERT(verify_at(x, true, 0, now0, &e) == 1);
		X509_free(ca);
		X509_free(x);
		EVP_PKEY_free(k);
	}
}

/* ---- issue ---- */

static void test_issue_client(void)
{
	tmp_reset();
	CU_ASSERT_FATAL(ca_init(PKI_KEY_EC_P256) == 0);
	const char *dns[] = {"a.example.org", "*.b.example.org"};
	struct pki_issue_opts o = {.dir = dir,
	                           .cn = "alice smith",
	                           .spiffe = "spiffe://example.org/ns/prod/sa/web",
	                           .dns = dns,
	                           .n_dns = 2,
	                           .now = now0};
	struct pki_issued out;
	char err[256] = "";
	CU_ASSERT_FATAL(pki_issue(&o, &out, err, sizeof(err)) == 0);
	CU_ASSERT(strcmp(out.cert_path, path_in("issued/alice_smith.crt")) == 0);
	CU_ASSERT(mode_of(out.key_path) == 0600);
	X509 *x = cert_read(out.cert_path);
	CU_ASSERT_FATAL(x != NULL);
	CU_ASSERT(pki_check_client_leaf(x) == PKI_OK);
	CU_ASSERT(X509_check_ca(x) == 0);
	CU_ASSERT(X509_get_key_usage(x) == KU_DIGITAL_SIGNATURE);
	CU_ASSERT(X509_get_extended_key_usage(x) == XKU_SSL_CLIENT);
	GENERAL_NAMES *g = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	CU_ASSERT_FATAL(g && sk_GENERAL_NAME_num(g) == 3);
	GENERAL_NAME *g0 = sk_GENERAL_NAME_value(g, 0);
	CU_ASSERT(g0->type == GEN_URI &&
	          strcmp((const char *)ASN1_STRING_get0_data(g0->d.uniformResourceIdentifier),
	                 o.spiffe) == 0);
	CU_ASSERT(sk_GENERAL_NAME_value(g, 2)->type == GEN_DNS);
	GENERAL_NAMES_free(g);
	/* Default validity: now - 60 s for a year. */
	CU_ASSERT(ASN1_TIME_cmp_time_t(X509_get0_notBefore(x), now0 - 60) == 0);
	CU_ASSERT(ASN1_TIME_cmp_time_t(X509_get0_notAfter(x), now0 - 60 + 365 * DAY) == 0);
	/* Recorded, with a copy under certs/. */
	struct pki_ca_entry *v;
	size_t n;
	CU_ASSERT_FATAL(pki_ca_list(dir, &v, &n, err, sizeof(err)) == 0);
	CU_ASSERT(n == 1 && strcmp(v[0].cn, "alice smith") == 0 && !v[0].revoked &&
	          strcmp(v[0].serial_hex, out.serial_hex) == 0 && strlen(v[0].serial_hex) == 32);
	pki_ca_list_free(v, n);
	char copy[128];
	snprintf(copy, sizeof(copy), "certs/%s.crt", out.serial_hex);
	CU_ASSERT(access(path_in(copy), R_OK) == 0);
	/* The same CN again would overwrite the files: refused, nothing recorded. */
	CU_ASSERT(pki_issue(&o, &out, err, sizeof(err)) == -1);
	CU_ASSERT(strstr(err, "already exists") != NULL);
	CU_ASSERT(pki_ca_list(dir, &v, &n, err, sizeof(err)) == 0 && n == 1);
	pki_ca_list_free(v, n);
	X509_free(x);
}

static void test_issue_server(void)
{
	tmp_reset();
	CU_ASSERT_FATAL(ca_init(PKI_KEY_EC_P256) == 0);
	struct pki_issued out;
	CU_ASSERT_FATAL(issue("gw.example.org", true, &out) == 0);
	X509 *x = cert_read(out.cert_path);
	CU_ASSERT_FATAL(x != NULL);
	CU_ASSERT(X509_get_extended_key_usage(x) == XKU_SSL_SERVER);
	CU_ASSERT(pki_check_client_leaf(x) == PKI_BAD_EKU);
	CU_ASSERT(X509_check_host(x, "gw.example.org", 0, 0, NULL) == 1);
	X509_free(x);
}

/* Operator input that must be refused before anything is written. */
static void test_issue_bad_input(void)
{
	static const char *bad_dns[] = {"a..b", "-a.example"};
	static const struct {
		const char *name, *cn, *spiffe;
		const char *const *dns;
		size_t n_dns;
		bool server;
		time_t nb, na;
	} rows[] = {
	    {"empty cn", "", NULL, NULL, 0, false, 0, 0},
	    {"control char", "a\nb", NULL, NULL, 0, false, 0, 0},
	    {"bad dns", "x", NULL, bad_dns, 1, false, 0, 0},
	    {"bad dns 2", "x", NULL, bad_dns + 1, 1, false, 0, 0},
	    {"server without name", "not a name", NULL, NULL, 0, true, 0, 0},
	    {"not spiffe", "x", "https://example.org/", NULL, 0, false, 0, 0},
	    {"window reversed", "x", NULL, NULL, 0, false, now0, now0 - 1},
	};
	tmp_reset();
	CU_ASSERT_FATAL(ca_init(PKI_KEY_EC_P256) == 0);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct pki_issue_opts o = {.dir = dir,
		                           .cn = rows[i].cn,
		                           .spiffe = rows[i].spiffe,
		                           .dns = rows[i].dns,
		                           .n_dns = rows[i].n_dns,
		                           .server = rows[i].server,
		                           .not_before = rows[i].nb,
		                           .not_after = rows[i].na,
		                           .now = now0};
		struct pki_issued out;
		char err[256] = "";
		if (pki_issue(&o, &out, err, sizeof(err)) != -1 || !err[0])
			CU_FAIL(rows[i].name);
	}
	struct pki_ca_entry *v;
	size_t n;
	char err[256];
	CU_ASSERT(pki_ca_list(dir, &v, &n, err, sizeof(err)) == 0 && n == 0);
	pki_ca_list_free(v, n);
}

/* An explicit window, entirely in the past, is honoured (tests need expired leaves). */
static void test_issue_window(void)
{
	tmp_reset();
	CU_ASSERT_FATAL(ca_init(PKI_KEY_EC_P256) == 0);
	struct pki_issue_opts o = {.dir = dir,
	                           .cn = "old",
	                           .not_before = now0 - 100 * DAY,
	                           .not_after = now0 - 10 * DAY,
	                           .out_prefix = path_in("old"),
	                           .now = now0};
	struct pki_issued out;
	char err[256];
	CU_ASSERT_FATAL(pki_issue(&o, &out, err, sizeof(err)) == 0);
	CU_ASSERT(strcmp(out.cert_path, path_in("old.crt")) == 0);
	time_t na = 0;
	char subj[128];
	CU_ASSERT(
	    pki_cert_file_not_after(out.cert_path, &na, subj, sizeof(subj), err, sizeof(err)) == 0);
	CU_ASSERT(na == now0 - 10 * DAY);
	CU_ASSERT(strcmp(subj, "CN=old") == 0);
	X509 *x = cert_read(out.cert_path);
	int e = 0;
	CU_ASSERT(verify_at(x, false, 0, now0, &e) == 0 && e == X509_V_ERR_CERT_HAS_EXPIRED);
	CU_ASSERT(ASN1_TIME_cmp_time_t(X509_get0_notBefore(x), now0 - 100 * DAY) == 0);
	X509_free(x);
}

/* ---- revoke and CRL ---- */

static void test_revoke_crl(void)
{
	struct pki_issued a, b;
	char err[256] = "", serial[PKI_SERIAL_HEX_MAX];
	int e = 0;

	tmp_reset();
	CU_ASSERT_FATAL(ca_init(PKI_KEY_EC_P256) == 0);
	CU_ASSERT_FATAL(issue("a", false, &a) == 0 && issue("b", false, &b) == 0);
	X509 *xa = cert_read(a.cert_path), *xb = cert_read(b.cert_path);
	CU_ASSERT_FATAL(xa && xb);
	CU_ASSERT(verify_at(xa, true, 0, now0, &e) == 1);
	/* By file, then by serial in lower case with separators. */
	CU_ASSERT(pki_revoke(dir, a.cert_path, PKI_CRL_KEY_COMPROMISE, now0 + 10, serial, err,
	                     sizeof(err)) == 0);
	CU_ASSERT(strcmp(serial, a.serial_hex) == 0);
	CU_ASSERT(pki_revoke(dir, a.serial_hex, PKI_CRL_SUPERSEDED, now0, NULL, err, sizeof(err)) ==
	          -1);
	CU_ASSERT(strstr(err, "already revoked") != NULL);
	CU_ASSERT(pki_revoke(dir, "0123abcd", PKI_CRL_UNSPECIFIED, now0, NULL, err, sizeof(err)) ==
	          -1);
	/* Revoked in the index only: the old CRL still passes it until crl is run. */
	CU_ASSERT(verify_at(xa, true, 0, now0 + 20, &e) == 1);
	CU_ASSERT(pki_crl_generate(dir, 7, now0 + 20, err, sizeof(err)) == 0);
	CU_ASSERT(verify_at(xa, true, 0, now0 + 30, &e) == 0 && e == X509_V_ERR_CERT_REVOKED);
	CU_ASSERT(verify_at(xb, true, 0, now0 + 30, &e) == 1);
	X509_CRL *crl = crl_read(path_in("crl.pem"));
	CU_ASSERT_FATAL(crl != NULL);
	CU_ASSERT(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)) == 1);
	ASN1_INTEGER *num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
	CU_ASSERT(num && ASN1_INTEGER_get(num) == 2);
	ASN1_INTEGER_free(num);
	X509_REVOKED *r = sk_X509_REVOKED_value(X509_CRL_get_REVOKED(crl), 0);
	ASN1_ENUMERATED *why = X509_REVOKED_get_ext_d2i(r, NID_crl_reason, NULL, NULL);
	CU_ASSERT(why && ASN1_ENUMERATED_get(why) == PKI_CRL_KEY_COMPROMISE);
	ASN1_ENUMERATED_free(why);
	X509_CRL_free(crl);
	/* b by its serial, written the way humans copy it. */
	char human[80] = "";
	for (size_t i = 0; b.serial_hex[i]; i++) {
		size_t n = strlen(human);
		human[n] = (char)(b.serial_hex[i] | 0x20);
		human[n + 1] = (i % 2 && b.serial_hex[i + 1]) ? ':' : '\0';
		human[n + 2] = '\0';
	}
	CU_ASSERT(pki_revoke(dir, human, PKI_CRL_UNSPECIFIED, now0, NULL, err, sizeof(err)) == 0);
	CU_ASSERT(pki_crl_generate(dir, 7, now0 + 40, err, sizeof(err)) == 0);
	CU_ASSERT(verify_at(xb, true, 0, now0 + 50, &e) == 0 && e == X509_V_ERR_CERT_REVOKED);
	X509_free(xa);
	X509_free(xb);
}

/* A certificate of another CA cannot be revoked here. */
static void test_revoke_foreign(void)
{
	char other[300], err[256] = "";
	struct pki_issued out;

	tmp_reset();
	snprintf(other, sizeof(other), "%s/other", dir);
	struct pki_ca_opts o = {.dir = other, .now = now0};
	CU_ASSERT_FATAL(pki_ca_init(&o, err, sizeof(err)) == 0);
	struct pki_issue_opts io = {.dir = other, .cn = "x", .now = now0};
	CU_ASSERT_FATAL(pki_issue(&io, &out, err, sizeof(err)) == 0);
	char mine[300];
	snprintf(mine, sizeof(mine), "%s/mine", dir);
	o.dir = mine;
	CU_ASSERT_FATAL(pki_ca_init(&o, err, sizeof(err)) == 0);
	CU_ASSERT(pki_revoke(mine, out.cert_path, PKI_CRL_UNSPECIFIED, now0, NULL, err,
	                     sizeof(err)) == -1);
	CU_ASSERT(strstr(err, "not issued by this CA") != NULL);
}

/* ---- CRL freshness and grace ---- */

static void test_crl_grace(void)
{
	struct pki_issued a, r;
	char err[256];
	int e = 0;

	tmp_reset();
	CU_ASSERT_FATAL(ca_init(PKI_KEY_EC_P256) == 0);
	CU_ASSERT_FATAL(issue("a", false, &a) == 0 && issue("r", false, &r) == 0);
	CU_ASSERT(pki_revoke(dir, r.cert_path, PKI_CRL_UNSPECIFIED, now0, NULL, err, sizeof(err)) ==
	          0);
	/* A one-day CRL, looked at three days later. */
	CU_ASSERT_FATAL(pki_crl_generate(dir, 1, now0, err, sizeof(err)) == 0);
	X509 *ok = cert_read(a.cert_path), *rev = cert_read(r.cert_path);
	CU_ASSERT_FATAL(ok && rev);
	time_t at = now0 + 3 * DAY;
	CU_ASSERT(verify_at(ok, true, 0, at, &e) == 0 && e == X509_V_ERR_CRL_HAS_EXPIRED);
	CU_ASSERT(verify_at(ok, true, (unsigned)(1 * DAY), at, &e) == 0);
	CU_ASSERT(verify_at(ok, true, (unsigned)(7 * DAY), at, &e) == 1);
	/* Inside the grace period the stale CRL still revokes. */
	CU_ASSERT(verify_at(rev, true, (unsigned)(7 * DAY), at, &e) == 0 &&
	          e == X509_V_ERR_CERT_REVOKED);
	time_t nu = 0;
	CU_ASSERT(pki_crl_file_next_update(path_in("crl.pem"), &nu, err, sizeof(err)) == 0);
	CU_ASSERT(nu == now0 + DAY);
	CU_ASSERT(pki_crl_file_next_update(path_in("ca.crt"), &nu, err, sizeof(err)) == -1);
	X509_free(ok);
	X509_free(rev);
}

/* ---- index file ---- */

static int write_index(const char *text)
{
	FILE *f = fopen(path_in("index.txt"), "w");
	int ok = f && fputs(text, f) >= 0;
	if (f)
		fclose(f);
	return ok ? 0 : -1;
}

/* Hand-edited or damaged indexes are refused with file:line, never half read. */
static void test_index_parse(void)
{
	static const struct {
		const char *text, *want; /* want: NULL = loads, else a substring of the error */
		size_t n;                /* entries when it loads */
	} rows[] = {
	    {"gwpki-index 1\ncrl-number 5\n", NULL, 0},
	    {"# c\n\ngwpki-index 1\nV 1A 20300101000000Z - - a b  c\n", NULL, 1},
	    {"gwpki-index 1\nR 1A 20300101000000Z 20250101000000Z keyCompromise x\r\n", NULL, 1},
	    {"", "empty index", 0},
	    {"gwpki-index 2\n", ":1: not a gatewayctl pki index", 0},
	    {"gwpki-index 1\nX 1A 20300101000000Z - - a\n", ":2: malformed", 0},
	    {"gwpki-index 1\nV 1a 20300101000000Z - - a\n", ":2: malformed", 0},
	    {"gwpki-index 1\nV 1A 2030 - - a\n", ":2: malformed", 0},
	    {"gwpki-index 1\nV 1A 20301301000000Z - - a\n", ":2: malformed", 0},
	    {"gwpki-index 1\nV 1A 20300101000000Z\n", ":2: malformed", 0},
	    {"gwpki-index 1\nR 1A 20300101000000Z 20250101000000Z bogus x\n", ":2: malformed", 0},
	    {"gwpki-index 1\nV 1A 20300101000000Z x - a\n", ":2: malformed", 0},
	    {"gwpki-index 1\n\nV 1A 20300101000000Z - - a\nV 1A 20300101000000Z - - b\n",
	     ":4: serial 1A listed twice", 0},
	    {"gwpki-index 1\ncrl-number x\n", ":2: malformed", 0},
	};
	tmp_reset();
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct pki_ca_entry *v = NULL;
		size_t n = 0;
		char err[512] = "";
		CU_ASSERT_FATAL(write_index(rows[i].text) == 0);
		int rc = pki_ca_list(dir, &v, &n, err, sizeof(err));
		bool good = rows[i].want ? (rc == -1 && strstr(err, rows[i].want) != NULL)
		                         : (rc == 0 && n == rows[i].n);
		if (!good) {
			fprintf(stderr, "row %zu: rc %d err [%s]\n", i, rc, err);
			CU_FAIL(rows[i].text);
		}
		if (rc == 0 && i == 1)
			CU_ASSERT(strcmp(v[0].cn, "a b  c") == 0 && v[0].not_after == 1893456000);
		if (rc == 0)
			pki_ca_list_free(v, n);
	}
}

/* What revoke records survives the round trip through index.txt. */
static void test_index_roundtrip(void)
{
	struct pki_issued a;
	struct pki_ca_entry *v = NULL;
	size_t n = 0;
	char err[256] = "";

	tmp_reset();
	CU_ASSERT_FATAL(ca_init(PKI_KEY_EC_P256) == 0);
	CU_ASSERT_FATAL(issue("with  spaces", false, &a) == 0);
	CU_ASSERT(pki_revoke(dir, a.serial_hex, PKI_CRL_PRIVILEGE_WITHDRAWN, now0 + 5, NULL, err,
	                     sizeof(err)) == 0);
	CU_ASSERT_FATAL(pki_ca_list(dir, &v, &n, err, sizeof(err)) == 0 && n == 1);
	CU_ASSERT(strcmp(v[0].cn, "with  spaces") == 0);
	CU_ASSERT(v[0].revoked && v[0].revoked_at == now0 + 5 &&
	          v[0].reason == PKI_CRL_PRIVILEGE_WITHDRAWN);
	CU_ASSERT(v[0].not_after == now0 - 60 + 365 * DAY);
	pki_ca_list_free(v, n);
}

/* Every way an operator writes a serial finds the certificate. */
static void test_serial_spellings(void)
{
	static const char *const forms[] = {"exact", "lower", "colons", "0x", "leading zeros"};
	tmp_reset();
	CU_ASSERT_FATAL(ca_init(PKI_KEY_EC_P256) == 0);
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		struct pki_issued a;
		char cn[16], s[128] = "", err[256] = "", got[PKI_SERIAL_HEX_MAX] = "";
		snprintf(cn, sizeof(cn), "s%zu", i);
		CU_ASSERT_FATAL(issue(cn, false, &a) == 0);
		for (size_t k = 0; a.serial_hex[k]; k++) {
			char ch = a.serial_hex[k];
			size_t n = strlen(s);
			s[n++] = i == 1 ? (char)(ch | 0x20) : ch;
			if (i == 2 && k % 2 && a.serial_hex[k + 1])
				s[n++] = ':';
			s[n] = '\0';
		}
		if (i == 3 || i == 4) {
			memmove(s + 2, s, strlen(s) + 1);
			memcpy(s, i == 3 ? "0x" : "00", 2);
		}
		if (pki_revoke(dir, s, PKI_CRL_UNSPECIFIED, now0, got, err, sizeof(err)) != 0 ||
		    strcmp(got, a.serial_hex) != 0) {
			fprintf(stderr, "%s: [%s] %s\n", forms[i], s, err);
			CU_FAIL(forms[i]);
		}
	}
	char err[256];
	CU_ASSERT(pki_revoke(dir, "zz-not-hex-nor-file", PKI_CRL_UNSPECIFIED, now0, NULL, err,
	                     sizeof(err)) == -1);
}

/* Files have the exact modes whatever the umask, and no temporary file is left over. */
static void test_file_modes(void)
{
	struct pki_issued a;
	tmp_reset();
	mode_t old = umask(0);
	int rc = ca_init(PKI_KEY_EC_P256) == 0 && issue("m", false, &a) == 0 ? 0 : -1;
	umask(old);
	CU_ASSERT_FATAL(rc == 0);
	CU_ASSERT(mode_of(path_in("ca.key")) == 0600);
	CU_ASSERT(mode_of(a.key_path) == 0600);
	CU_ASSERT(mode_of(a.cert_path) == 0644);
	CU_ASSERT(mode_of(path_in("index.txt")) == 0644);
	size_t n = 0;
	DIR *d = opendir(path_in("issued"));
	struct dirent *e;
	while (d && (e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	CU_ASSERT(n == 2);
	CU_ASSERT(access(path_in("index.txt.tmp"), F_OK) != 0);
}

static void test_reason_names(void)
{
	enum pki_crl_reason r;
	CU_ASSERT(pki_crl_reason_parse("keycompromise", &r) == 0 && r == PKI_CRL_KEY_COMPROMISE);
	CU_ASSERT(pki_crl_reason_parse("removeFromCRL", &r) == -1);
	CU_ASSERT(strcmp(pki_crl_reason_str(PKI_CRL_CESSATION_OF_OPERATION),
	                 "cessationOfOperation") == 0);
}

CU_SUITE(pki_certgen, NULL, suite_clean, {"init_files", test_init_files},
         {"key_types", test_key_types}, {"issue_client", test_issue_client},
         {"issue_server", test_issue_server}, {"issue_bad_input", test_issue_bad_input},
         {"issue_window", test_issue_window}, {"revoke_crl", test_revoke_crl},
         {"revoke_foreign", test_revoke_foreign}, {"crl_grace", test_crl_grace},
         {"index_parse", test_index_parse}, {"index_roundtrip", test_index_roundtrip},
         {"serial_spellings", test_serial_spellings}, {"file_modes", test_file_modes},
         {"reason_names", test_reason_names})
