/*
 * pki unit tests. Every certificate and CRL is minted here in C into a temporary
 * directory, and every handshake runs in memory over a BIO pair (no sockets): the
 * gateway's listener context against plain OpenSSL clients, and pki_client against a
 * pki_server acting as a backend. Each refusal case asserts the recorded pki_reason.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "cu.h"
#include "pki.h"

struct tp_spec {
	const char *cn;
	long serial;
	bool ca;
	const char *ku;  /* NULL: default for leaf/CA; "": none */
	const char *eku; /* NULL: none */
	const char *san; /* NULL: none */
	long nb, na;     /* validity offsets from now in seconds; na 0 = one year */
};

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (!ext)
		return -1;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : -1;
}

static int add_exts(X509 *x, X509 *issuer, const struct tp_spec *sp)
{
	const char *ku =
	    sp->ku ? sp->ku
	           : (sp->ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
	if (add_ext(x, issuer, NID_basic_constraints, sp->ca ? "critical,CA:TRUE" : "CA:FALSE") <
	        0 ||
	    add_ext(x, issuer, NID_subject_key_identifier, "hash") < 0)
		return -1;
	if (*ku && add_ext(x, issuer, NID_key_usage, ku) < 0)
		return -1;
	if (issuer && add_ext(x, issuer, NID_authority_key_identifier, "keyid:always") < 0)
		return -1;
	if (sp->eku && add_ext(x, issuer, NID_ext_key_usage, sp->eku) < 0)
		return -1;
	if (sp->san && add_ext(x, issuer, NID_subject_alt_name, sp->san) < 0)
		return -1;
	return 0;
}

static int tp_mint(const struct tp_spec *sp, X509 *issuer, EVP_PKEY *issuer_key, X509 **xout,
                   EVP_PKEY **kout)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();

	if (!key || !x || !name)
		goto fail;
	if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)sp->cn,
	                                -1, -1, 0))
		goto fail;
	if (!X509_set_version(x, X509_VERSION_3) ||
	    !ASN1_INTEGER_set(X509_get_serialNumber(x), sp->serial) ||
	    !X509_set_subject_name(x, name) ||
	    !X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), sp->nb) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), sp->na ? sp->na : 365L * 86400) ||
	    !X509_set_pubkey(x, key))
		goto fail;
	if (add_exts(x, issuer, sp) < 0)
		goto fail;
	if (!X509_sign(x, issuer ? issuer_key : key, EVP_sha256()))
		goto fail;
	X509_NAME_free(name);
	*xout = x;
	*kout = key;
	return 0;
fail:
	X509_NAME_free(name);
	X509_free(x);
	EVP_PKEY_free(key);
	return -1;
}

static X509_CRL *tp_crl(X509 *issuer, EVP_PKEY *key, const long *serials, size_t n,
                        long next_update)
{
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *t = ASN1_TIME_new();

	if (!crl || !t || !X509_CRL_set_version(crl, 1) ||
	    !X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer)))
		goto fail;
	if (!X509_gmtime_adj(t, -60) || !X509_CRL_set1_lastUpdate(crl, t) ||
	    !X509_gmtime_adj(t, next_update) || !X509_CRL_set1_nextUpdate(crl, t))
		goto fail;
	for (size_t i = 0; i < n; i++) {
		X509_REVOKED *r = X509_REVOKED_new();
		ASN1_INTEGER *sn = ASN1_INTEGER_new();
		bool ok = r && sn && ASN1_INTEGER_set(sn, serials[i]) &&
		          X509_REVOKED_set_serialNumber(r, sn) && X509_gmtime_adj(t, -30) &&
		          X509_REVOKED_set_revocationDate(r, t) && X509_CRL_add0_revoked(crl, r);
		ASN1_INTEGER_free(sn);
		if (!ok) {
			X509_REVOKED_free(r);
			goto fail;
		}
	}
	if (!X509_CRL_sort(crl) || !X509_CRL_sign(crl, key, EVP_sha256()))
		goto fail;
	ASN1_TIME_free(t);
	return crl;
fail:
	ASN1_TIME_free(t);
	X509_CRL_free(crl);
	return NULL;
}

static const char *tp_path(const char *dir, const char *file)
{
	static char ring[16][512];
	static unsigned next;
	char *p = ring[next++ % 16];
	snprintf(p, sizeof(ring[0]), "%s/%s", dir, file);
	return p;
}

static FILE *open_w(const char *dir, const char *file)
{
	return fopen(tp_path(dir, file), "w");
}

static int tp_write_cert(const char *dir, const char *file, X509 *const *certs, size_t n)
{
	FILE *f = open_w(dir, file);
	int ok = f != NULL;
	for (size_t i = 0; ok && i < n; i++)
		ok = PEM_write_X509(f, certs[i]) == 1;
	if (f && fclose(f) != 0)
		ok = 0;
	return ok ? 0 : -1;
}

static int tp_write_key(const char *dir, const char *file, EVP_PKEY *key)
{
	FILE *f = open_w(dir, file);
	int ok = f && PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1;
	if (f && fclose(f) != 0)
		ok = 0;
	return ok ? 0 : -1;
}

static int tp_write_crl(const char *dir, const char *file, X509_CRL *crl)
{
	FILE *f = open_w(dir, file);
	int ok = f && PEM_write_X509_CRL(f, crl) == 1;
	if (f && fclose(f) != 0)
		ok = 0;
	return ok ? 0 : -1;
}

static int tp_write_text(const char *dir, const char *file, const char *text)
{
	FILE *f = open_w(dir, file);
	int ok = f && fputs(text, f) >= 0;
	if (f && fclose(f) != 0)
		ok = 0;
	return ok ? 0 : -1;
}

static void tp_rmdir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			unlink(tp_path(dir, e->d_name));
	}
	closedir(d);
	rmdir(dir);
}

/* One step of one side: 1 done, 0 wants I/O, -1 failed. */
static int step(SSL *ssl)
{
	int r = SSL_do_handshake(ssl);
	if (r == 1)
		return 1;
	int e = SSL_get_error(ssl, r);
	return (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) ? 0 : -1;
}

/*
 * Connects client and server through a BIO pair and steps both until each side is done
 * or failed, or neither makes progress. Success means the server completed: in TLS 1.3
 * the client finishes before the server has looked at its certificate. The client then
 * reads once so it processes post-handshake messages (tickets, a late alert).
 */
static int tp_handshake(SSL *cli, SSL *srv, int *cli_state)
{
	BIO *bc = NULL, *bs = NULL;
	int cs = 0, ss = 0;
	unsigned char byte;

	if (!BIO_new_bio_pair(&bc, 0, &bs, 0))
		return -1;
	SSL_set_bio(cli, bc, bc);
	SSL_set_bio(srv, bs, bs);
	SSL_set_connect_state(cli);
	SSL_set_accept_state(srv);
	for (int i = 0; i < 64 && (cs == 0 || ss == 0); i++) {
		if (cs == 0)
			cs = step(cli);
		if (ss == 0)
			ss = step(srv);
	}
	if (cs == 1 && SSL_read(cli, &byte, 1) <= 0) {
		int e = SSL_get_error(cli, 0);
		if (e != SSL_ERROR_WANT_READ)
			cs = -1;
	}
	if (cli_state)
		*cli_state = cs;
	return ss == 1 ? 0 : -1;
}

/* ---- fixture ---- */

enum ck {
	CK_NONE,
	CK_VALID,
	CK_UNTRUSTED,
	CK_EXPIRED,
	CK_NOTYET,
	CK_REVOKED,
	CK_SELFSIGNED,
	CK_LEAFCA,
	CK_BADEKU,
	CK_BADKU,
	CK_CHAIN,
	CK_SOON, /* valid, expires in 10 minutes */
	CK_MAX
};

#define DAY  86400L
#define YEAR (365 * DAY)

/* Client certificates by kind, with the CA that signs each one. */
static const struct leaf_def {
	const char *file;
	char issuer; /* 'c' ca, 'i' intermediate, 'o' other CA, 's' self */
	struct tp_spec spec;
} leaf_defs[CK_MAX] = {
    [CK_VALID] = {"valid", 'c', {"valid", 10, false, NULL, "clientAuth", "URI:spiffe://t/v", 0, 0}},
    [CK_UNTRUSTED] = {"untrusted", 'o', {"untrusted", 11, false, NULL, "clientAuth", NULL, 0, 0}},
    [CK_EXPIRED] = {"expired",
                    'c',
                    {"expired", 12, false, NULL, "clientAuth", NULL, -2 * YEAR, -YEAR}},
    [CK_NOTYET] = {"notyet", 'c', {"notyet", 13, false, NULL, "clientAuth", NULL, YEAR, 2 * YEAR}},
    [CK_REVOKED] = {"revoked", 'c', {"revoked", 14, false, NULL, "clientAuth", NULL, 0, 0}},
    /* No keyUsage: OpenSSL 3 only treats a cert as self-signed if it may sign certs. */
    [CK_SELFSIGNED] = {"selfsigned", 's', {"selfsigned", 15, false, "", "clientAuth", NULL, 0, 0}},
    [CK_LEAFCA] = {"leafca",
                   'c',
                   {"leafca", 16, true, "critical,digitalSignature,keyCertSign", "clientAuth", NULL,
                    0, 0}},
    [CK_BADEKU] = {"badeku", 'c', {"badeku", 17, false, NULL, "serverAuth", NULL, 0, 0}},
    [CK_BADKU] = {"badku",
                  'c',
                  {"badku", 18, false, "critical,keyEncipherment", "clientAuth", NULL, 0, 0}},
    [CK_CHAIN] = {"chain", 'i', {"chain", 19, false, NULL, "clientAuth", NULL, 0, 0}},
    [CK_SOON] = {"soon", 'c', {"soon", 20, false, NULL, "clientAuth", NULL, 0, 600}},
};

static struct {
	char dir[64];
	X509 *ca, *inter, *other, *srvca, *server;
	EVP_PKEY *ca_key, *inter_key, *other_key, *srvca_key, *server_key;
	X509 *leaf[CK_MAX];
	EVP_PKEY *lkey[CK_MAX];
} fx;

static const char *P(const char *file)
{
	return tp_path(fx.dir, file);
}

static int mint_authorities(void)
{
	struct tp_spec ca = {"Test CA", 1, true, NULL, NULL, NULL, -DAY, 10 * YEAR};
	struct tp_spec inter = {"Test Inter", 2, true, NULL, NULL, NULL, -DAY, 5 * YEAR};
	struct tp_spec other = {"Other CA", 3, true, NULL, NULL, NULL, -DAY, 10 * YEAR};
	struct tp_spec srvca = {"Server CA", 4, true, NULL, NULL, NULL, -DAY, 10 * YEAR};
	struct tp_spec server = {
	    "backend.test", 5,   false, NULL, "serverAuth", "DNS:backend.test,IP:127.0.0.1",
	    -DAY,           YEAR};

	if (tp_mint(&ca, NULL, NULL, &fx.ca, &fx.ca_key) < 0 ||
	    tp_mint(&inter, fx.ca, fx.ca_key, &fx.inter, &fx.inter_key) < 0 ||
	    tp_mint(&other, NULL, NULL, &fx.other, &fx.other_key) < 0 ||
	    tp_mint(&srvca, NULL, NULL, &fx.srvca, &fx.srvca_key) < 0 ||
	    tp_mint(&server, fx.srvca, fx.srvca_key, &fx.server, &fx.server_key) < 0)
		return -1;
	if (tp_write_cert(fx.dir, "ca.crt", &fx.ca, 1) < 0 ||
	    tp_write_cert(fx.dir, "other.crt", &fx.other, 1) < 0 ||
	    tp_write_cert(fx.dir, "srvca.crt", &fx.srvca, 1) < 0 ||
	    tp_write_cert(fx.dir, "server.crt", (X509 *[]){fx.server, fx.srvca}, 2) < 0 ||
	    tp_write_key(fx.dir, "server.key", fx.server_key) < 0 ||
	    tp_write_key(fx.dir, "other.key", fx.other_key) < 0)
		return -1;
	return 0;
}

static int mint_leaves(void)
{
	for (int k = CK_VALID; k < CK_MAX; k++) {
		const struct leaf_def *d = &leaf_defs[k];
		X509 *iss = d->issuer == 'c'   ? fx.ca
		            : d->issuer == 'i' ? fx.inter
		            : d->issuer == 'o' ? fx.other
		                               : NULL;
		EVP_PKEY *ikey = d->issuer == 'c'   ? fx.ca_key
		                 : d->issuer == 'i' ? fx.inter_key
		                 : d->issuer == 'o' ? fx.other_key
		                                    : NULL;
		char name[64];
		if (tp_mint(&d->spec, iss, ikey, &fx.leaf[k], &fx.lkey[k]) < 0)
			return -1;
		snprintf(name, sizeof(name), "%s.crt", d->file);
		if (tp_write_cert(fx.dir, name, &fx.leaf[k], 1) < 0)
			return -1;
		snprintf(name, sizeof(name), "%s.key", d->file);
		if (tp_write_key(fx.dir, name, fx.lkey[k]) < 0)
			return -1;
	}
	return 0;
}

static int mint_crls(void)
{
	const long revoked[] = {14};
	const long revoked2[] = {14, 10};
	X509_CRL *a = tp_crl(fx.ca, fx.ca_key, revoked, 1, 30 * DAY);
	X509_CRL *b = tp_crl(fx.ca, fx.ca_key, revoked2, 2, 30 * DAY);
	X509_CRL *i = tp_crl(fx.inter, fx.inter_key, NULL, 0, 30 * DAY);
	int rc = -1;

	if (a && b && i && tp_write_crl(fx.dir, "ca.crl", a) == 0 &&
	    tp_write_crl(fx.dir, "ca2.crl", b) == 0 && tp_write_crl(fx.dir, "inter.crl", i) == 0 &&
	    tp_write_text(fx.dir, "garbage.crl", "-----BEGIN X509 CRL-----\nnot base64!\n") == 0)
		rc = 0;
	X509_CRL_free(a);
	X509_CRL_free(b);
	X509_CRL_free(i);
	return rc;
}

static int suite_init(void)
{
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/test_pki.XXXXXX");
	if (!mkdtemp(fx.dir))
		return -1;
	if (mint_authorities() < 0 || mint_leaves() < 0 || mint_crls() < 0)
		return -1;
	return 0;
}

static int suite_clean(void)
{
	X509 *certs[] = {fx.ca, fx.inter, fx.other, fx.srvca, fx.server};
	EVP_PKEY *keys[] = {fx.ca_key, fx.inter_key, fx.other_key, fx.srvca_key, fx.server_key};
	for (size_t i = 0; i < 5; i++) {
		X509_free(certs[i]);
		EVP_PKEY_free(keys[i]);
	}
	for (int k = 0; k < CK_MAX; k++) {
		X509_free(fx.leaf[k]);
		EVP_PKEY_free(fx.lkey[k]);
	}
	tp_rmdir(fx.dir);
	return 0;
}

/* ---- builders ---- */

enum crl_set { CRLS_NONE, CRLS_ALL, CRLS_CA_ONLY, CRLS_REVOKE_VALID };

static struct pki_server *srv_new(const char *ca_file, enum crl_set crls, bool tickets)
{
	const char *all[] = {P("ca.crl"), P("inter.crl")};
	const char *ca_only[] = {P("ca.crl")};
	const char *rv[] = {P("ca2.crl"), P("inter.crl")};
	struct pki_server_opts o = {
	    .cert_file = P("server.crt"),
	    .key_file = P("server.key"),
	    .client_ca_file = ca_file ? P(ca_file) : NULL,
	    .require_client_cert = ca_file != NULL,
	    .session_tickets = tickets,
	};
	struct pki_server *srv = NULL;
	char err[512] = "";

	if (crls == CRLS_ALL || crls == CRLS_REVOKE_VALID) {
		o.crl_files = crls == CRLS_ALL ? all : rv;
		o.n_crl_files = 2;
	} else if (crls == CRLS_CA_ONLY) {
		o.crl_files = ca_only;
		o.n_crl_files = 1;
	}
	if (pki_server_new(&o, &srv, err, sizeof(err)) < 0)
		fprintf(stderr, "pki_server_new: %s\n", err);
	return srv;
}

static SSL_CTX *cli_ctx(enum ck kind, int max_ver)
{
	SSL_CTX *c = SSL_CTX_new(TLS_client_method());
	if (!c)
		return NULL;
	SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
	if (max_ver)
		SSL_CTX_set_max_proto_version(c, max_ver);
	if (max_ver && max_ver < TLS1_2_VERSION) {
		/* Debian's default security level would stop the client before it says hello. */
		SSL_CTX_set_security_level(c, 0);
		SSL_CTX_set_min_proto_version(c, TLS1_VERSION);
		SSL_CTX_set_cipher_list(c, "DEFAULT:@SECLEVEL=0");
	}
	if (kind != CK_NONE) {
		SSL_CTX_use_certificate(c, fx.leaf[kind]);
		SSL_CTX_use_PrivateKey(c, fx.lkey[kind]);
		if (kind == CK_CHAIN)
			SSL_CTX_add1_chain_cert(c, fx.inter);
	}
	return c;
}

/* One handshake of a client ctx against a server ctx; returns the server SSL. */
static SSL *connect_pair(SSL_CTX *cctx, SSL_CTX *sctx, SSL **cli_out, int *rc)
{
	SSL *c = SSL_new(cctx);
	SSL *s = SSL_new(sctx);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	*rc = tp_handshake(c, s, NULL);
	/* pki_ssl_reason must not depend on the error queue still being there. */
	ERR_clear_error();
	if (cli_out)
		*cli_out = c;
	else
		SSL_free(c);
	return s;
}

/* ---- handshake table ---- */

struct hs_case {
	const char *name;
	enum ck kind;
	enum crl_set crls;
	int max_ver; /* 0: the run's version */
	bool ok;
	enum pki_reason reason;
};

static const struct hs_case hs_cases[] = {
    {"valid", CK_VALID, CRLS_ALL, 0, true, PKI_OK},
    {"valid_no_crls", CK_VALID, CRLS_NONE, 0, true, PKI_OK},
    {"no_cert", CK_NONE, CRLS_ALL, 0, false, PKI_NO_CERT},
    {"untrusted_ca", CK_UNTRUSTED, CRLS_ALL, 0, false, PKI_UNKNOWN_CA},
    {"expired", CK_EXPIRED, CRLS_ALL, 0, false, PKI_EXPIRED},
    {"not_yet_valid", CK_NOTYET, CRLS_ALL, 0, false, PKI_NOT_YET_VALID},
    {"revoked", CK_REVOKED, CRLS_ALL, 0, false, PKI_REVOKED},
    {"revoked_without_crl", CK_REVOKED, CRLS_NONE, 0, true, PKI_OK},
    {"self_signed", CK_SELFSIGNED, CRLS_ALL, 0, false, PKI_SELF_SIGNED},
    {"leaf_is_ca", CK_LEAFCA, CRLS_ALL, 0, false, PKI_LEAF_IS_CA},
    {"eku_server_only", CK_BADEKU, CRLS_ALL, 0, false, PKI_BAD_EKU},
    {"ku_no_digital_signature", CK_BADKU, CRLS_ALL, 0, false, PKI_BAD_EKU},
    {"intermediate", CK_CHAIN, CRLS_ALL, 0, true, PKI_OK},
    {"intermediate_without_its_crl", CK_CHAIN, CRLS_CA_ONLY, 0, false, PKI_CRL_PROBLEM},
    {"tls11_client", CK_VALID, CRLS_ALL, TLS1_1_VERSION, false, PKI_PROTOCOL},
};

static void run_hs_table(int run_ver)
{
	for (size_t i = 0; i < sizeof(hs_cases) / sizeof(hs_cases[0]); i++) {
		const struct hs_case *tc = &hs_cases[i];
		struct pki_server *srv = srv_new("ca.crt", tc->crls, false);
		SSL_CTX *cctx = cli_ctx(tc->kind, tc->max_ver ? tc->max_ver : run_ver);
		int rc = -1;

		CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
		CU_ASSERT_PTR_NOT_NULL_FATAL(cctx);
		SSL *s = connect_pair(cctx, pki_server_get0_ctx(srv), NULL, &rc);
		enum pki_reason r = pki_ssl_reason(s);
		if ((rc == 0) != tc->ok || r != tc->reason)
			fprintf(stderr, "\n  case %s (tls %x): handshake %s, reason %s, want %s\n",
			        tc->name, run_ver, rc == 0 ? "ok" : "failed", pki_reason_str(r),
			        pki_reason_str(tc->reason));
		CU_ASSERT_EQUAL(rc == 0, tc->ok);
		CU_ASSERT_EQUAL(r, tc->reason);
		if (tc->ok && rc == 0)
			CU_ASSERT_PTR_NOT_NULL(SSL_get0_peer_certificate(s));
		SSL_free(s);
		SSL_CTX_free(cctx);
		pki_server_free(srv);
	}
}

static void test_handshake_tls13(void)
{
	run_hs_table(TLS1_3_VERSION);
}

static void test_handshake_tls12(void)
{
	run_hs_table(TLS1_2_VERSION);
}

/* ---- construction errors ---- */

struct err_case {
	const char *name;
	const char *cert, *key, *ca, *crl;
	const char *want[3]; /* substrings err must contain */
};

static const struct err_case err_cases[] = {
    {"key_mismatch",
     "server.crt",
     "other.key",
     "ca.crt",
     NULL,
     {"other.key", "server.crt", "does not match"}},
    {"garbage_crl",
     "server.crt",
     "server.key",
     "ca.crt",
     "garbage.crl",
     {"garbage.crl", "cannot parse CRL", NULL}},
    {"crl_is_a_cert",
     "server.crt",
     "server.key",
     "ca.crt",
     "ca.crt",
     {"ca.crt", "cannot parse CRL", NULL}},
    {"missing_ca", "server.crt", "server.key", "nope.crt", NULL, {"nope.crt", NULL, NULL}},
    {"ca_without_cert",
     "server.crt",
     "server.key",
     "ca.crl",
     NULL,
     {"ca.crl", "no CA certificate", NULL}},
    {"missing_cert", "nope.crt", "server.key", "ca.crt", NULL, {"nope.crt", NULL, NULL}},
    {"missing_key", "server.crt", "nope.key", "ca.crt", NULL, {"nope.key", NULL, NULL}},
};

static void test_server_errors(void)
{
	for (size_t i = 0; i < sizeof(err_cases) / sizeof(err_cases[0]); i++) {
		const struct err_case *tc = &err_cases[i];
		const char *crls[1] = {tc->crl ? P(tc->crl) : NULL};
		struct pki_server_opts o = {
		    .cert_file = P(tc->cert),
		    .key_file = P(tc->key),
		    .client_ca_file = P(tc->ca),
		    .crl_files = crls,
		    .n_crl_files = tc->crl ? 1 : 0,
		    .require_client_cert = true,
		};
		struct pki_server *srv = (struct pki_server *)&o; /* must stay untouched */
		char err[512] = "";

		CU_ASSERT_EQUAL(pki_server_new(&o, &srv, err, sizeof(err)), -1);
		CU_ASSERT_PTR_EQUAL(srv, (struct pki_server *)&o);
		for (int j = 0; j < 3 && tc->want[j]; j++) {
			if (!strstr(err, tc->want[j]))
				fprintf(stderr, "\n  case %s: \"%s\" lacks \"%s\"\n", tc->name, err,
				        tc->want[j]);
			CU_ASSERT_PTR_NOT_NULL(strstr(err, tc->want[j]));
		}
	}
}

static void test_client_errors(void)
{
	struct pki_client_opts no_ca = {.verify = true};
	struct pki_client_opts mismatch = {.ca_file = P("srvca.crt"),
	                                   .cert_file = P("valid.crt"),
	                                   .key_file = P("other.key"),
	                                   .verify = true};
	struct pki_client_opts bad_ca = {.ca_file = P("nope.crt"), .verify = true};
	struct pki_client *cli = NULL;
	char err[512] = "";

	CU_ASSERT_EQUAL(pki_client_new(&no_ca, &cli, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "CA"));
	CU_ASSERT_EQUAL(pki_client_new(&mismatch, &cli, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "other.key"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "valid.crt"));
	CU_ASSERT_EQUAL(pki_client_new(&bad_ca, &cli, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "nope.crt"));
	CU_ASSERT_PTR_NULL(cli);
	CU_ASSERT_STRING_EQUAL(pki_client_error_str(NULL, 0), "tls handshake failed");
}

/* ---- re-verification, trust digest, expiry ---- */

static void test_reverify_after_revocation(void)
{
	struct pki_server *old = srv_new("ca.crt", CRLS_ALL, false);
	struct pki_server *now = srv_new("ca.crt", CRLS_REVOKE_VALID, false);
	struct pki_server *other = srv_new("other.crt", CRLS_NONE, false);
	SSL_CTX *cctx = cli_ctx(CK_VALID, 0);
	SSL_CTX *chain_ctx = cli_ctx(CK_CHAIN, 0);
	int rc = -1;

	CU_ASSERT_PTR_NOT_NULL_FATAL(old);
	CU_ASSERT_PTR_NOT_NULL_FATAL(now);
	CU_ASSERT_PTR_NOT_NULL_FATAL(other);
	SSL *s = connect_pair(cctx, pki_server_get0_ctx(old), NULL, &rc);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_EQUAL(pki_server_reverify(old, s), PKI_OK);
	CU_ASSERT_EQUAL(pki_server_reverify(now, s), PKI_REVOKED);
	CU_ASSERT_EQUAL(pki_server_reverify(other, s), PKI_UNKNOWN_CA);
	SSL_free(s);

	/* The intermediate comes from the connection's own chain, not the store. */
	s = connect_pair(chain_ctx, pki_server_get0_ctx(old), NULL, &rc);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_EQUAL(pki_server_reverify(now, s), PKI_OK);
	SSL_free(s);

	/* A connection that never presented a certificate has nothing to re-verify. */
	s = SSL_new(pki_server_get0_ctx(old));
	CU_ASSERT_EQUAL(pki_server_reverify(old, s), PKI_NO_CERT);
	SSL_free(s);
	SSL_CTX_free(cctx);
	SSL_CTX_free(chain_ctx);
	pki_server_free(old);
	pki_server_free(now);
	pki_server_free(other);
}

static void test_trust_digest(void)
{
	struct pki_server *a = srv_new("ca.crt", CRLS_NONE, false);
	struct pki_server *a2 = srv_new("ca.crt", CRLS_NONE, true);
	struct pki_server *b = srv_new("other.crt", CRLS_NONE, false);
	struct pki_server *c = srv_new("ca.crt", CRLS_ALL, false);
	unsigned char da[32], da2[32], db[32], dc[32];

	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a2);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	pki_server_trust_digest(a, da);
	pki_server_trust_digest(a2, da2);
	pki_server_trust_digest(b, db);
	pki_server_trust_digest(c, dc);
	CU_ASSERT_EQUAL(memcmp(da, da2, 32), 0); /* tickets are not trust */
	CU_ASSERT_NOT_EQUAL(memcmp(da, db, 32), 0);
	CU_ASSERT_NOT_EQUAL(memcmp(da, dc, 32), 0);
	pki_server_free(a);
	pki_server_free(a2);
	pki_server_free(b);
	pki_server_free(c);
}

static void test_cert_expiry(void)
{
	struct pki_server *srv = srv_new("ca.crt", CRLS_NONE, false);
	time_t now = time(NULL);

	CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
	long left = pki_server_cert_expiry(srv, now);
	CU_ASSERT(left > YEAR - 600 && left <= YEAR + 5);
	CU_ASSERT(pki_server_cert_expiry(srv, now + 2 * YEAR) < 0);
	pki_server_free(srv);
}

/* ---- leaf checks and tokens ---- */

static void test_check_client_leaf(void)
{
	static const struct {
		enum ck kind;
		enum pki_reason want;
	} cases[] = {
	    {CK_VALID, PKI_OK},       {CK_SELFSIGNED, PKI_OK}, {CK_LEAFCA, PKI_LEAF_IS_CA},
	    {CK_BADEKU, PKI_BAD_EKU}, {CK_BADKU, PKI_BAD_EKU}, {CK_EXPIRED, PKI_OK},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CU_ASSERT_EQUAL(pki_check_client_leaf(fx.leaf[cases[i].kind]), cases[i].want);
	CU_ASSERT_EQUAL(pki_check_client_leaf(fx.ca), PKI_LEAF_IS_CA);
	CU_ASSERT_EQUAL(pki_check_client_leaf(NULL), PKI_NO_CERT);
}

static void test_reason_str(void)
{
	static const char *const want[PKI_REASON_MAX] = {
	    "ok",       "no_cert",       "unknown_ca",     "self_signed",
	    "expired",  "not_yet_valid", "revoked",        "crl_problem",
	    "bad_eku",  "leaf_is_ca",    "chain_too_long", "bad_signature",
	    "protocol", "other",
	};
	for (int r = 0; r < PKI_REASON_MAX; r++)
		CU_ASSERT_STRING_EQUAL(pki_reason_str((enum pki_reason)r), want[r]);
	CU_ASSERT_STRING_EQUAL(pki_reason_str(PKI_REASON_MAX), "other");
	CU_ASSERT_STRING_EQUAL(pki_reason_str((enum pki_reason) - 1), "other");
}

/* ---- ALPN ---- */

static void test_alpn(void)
{
	static const struct {
		const char *name;
		const char *offer; /* wire format, NULL = no ALPN */
		unsigned len;
		bool ok;
		const char *selected;
	} cases[] = {
	    {"http11", "\x08http/1.1", 9, true, "http/1.1"},
	    {"h2_first", "\x02h2\x08http/1.1", 12, true, "http/1.1"},
	    {"none", NULL, 0, true, NULL},
	    {"h2_only", "\x02h2", 3, false, NULL},
	};
	struct pki_server *srv = srv_new("ca.crt", CRLS_NONE, false);
	CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		SSL_CTX *cctx = cli_ctx(CK_VALID, 0);
		const unsigned char *sel = NULL;
		unsigned sel_len = 0;
		int rc = -1;

		if (cases[i].offer)
			SSL_CTX_set_alpn_protos(cctx, (const unsigned char *)cases[i].offer,
			                        cases[i].len);
		SSL *s = connect_pair(cctx, pki_server_get0_ctx(srv), NULL, &rc);
		CU_ASSERT_EQUAL(rc == 0, cases[i].ok);
		SSL_get0_alpn_selected(s, &sel, &sel_len);
		if (cases[i].selected) {
			CU_ASSERT_EQUAL(sel_len, strlen(cases[i].selected));
			CU_ASSERT(sel && memcmp(sel, cases[i].selected, sel_len) == 0);
		} else {
			CU_ASSERT_EQUAL(sel_len, 0);
		}
		if (!cases[i].ok)
			CU_ASSERT_EQUAL(pki_ssl_reason(s), PKI_PROTOCOL);
		SSL_free(s);
		SSL_CTX_free(cctx);
	}
	pki_server_free(srv);
}

/* ---- upstream client ---- */

static void test_upstream_names(void)
{
	static const struct {
		const char *ca;
		const char *host;
		bool verify;
		bool ok;
		long vr; /* -1: not checked (verification off) */
		const char *sni;
		const char *msg;
	} cases[] = {
	    {"srvca.crt", "backend.test", true, true, X509_V_OK, "backend.test", NULL},
	    {"srvca.crt", "wrong.test", true, false, X509_V_ERR_HOSTNAME_MISMATCH, "wrong.test",
	     "hostname mismatch"},
	    {"srvca.crt", "127.0.0.1", true, true, X509_V_OK, NULL, NULL},
	    {"srvca.crt", "127.0.0.2", true, false, X509_V_ERR_IP_ADDRESS_MISMATCH, NULL,
	     "IP address mismatch"},
	    /* server.crt carries its root, hence "self-signed in chain" rather than
	     * "unable to get issuer" under a foreign CA. */
	    {"ca.crt", "backend.test", true, false, X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN,
	     "backend.test", "self-signed certificate in certificate chain"},
	    {NULL, "wrong.test", false, true, -1, "wrong.test", NULL},
	};
	struct pki_server *backend = srv_new(NULL, CRLS_NONE, false);
	CU_ASSERT_PTR_NOT_NULL_FATAL(backend);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pki_client_opts o = {.ca_file = cases[i].ca ? P(cases[i].ca) : NULL,
		                            .verify = cases[i].verify};
		struct pki_client *cli = NULL;
		char err[256] = "";
		int cs = 0;

		CU_ASSERT_EQUAL_FATAL(pki_client_new(&o, &cli, err, sizeof(err)), 0);
		SSL *c = pki_client_ssl_new(cli, cases[i].host);
		SSL *s = SSL_new(pki_server_get0_ctx(backend));
		CU_ASSERT_PTR_NOT_NULL_FATAL(c);
		tp_handshake(c, s, &cs);
		CU_ASSERT_EQUAL(cs == 1, cases[i].ok);
		if (cases[i].vr >= 0)
			CU_ASSERT_EQUAL(SSL_get_verify_result(c), cases[i].vr);
		const char *sni = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
		if (cases[i].sni) {
			CU_ASSERT(sni && strcmp(sni, cases[i].sni) == 0);
		} else {
			CU_ASSERT_PTR_NULL(sni);
		}
		if (cases[i].msg)
			CU_ASSERT_STRING_EQUAL(pki_client_error_str(c, ERR_peek_error()),
			                       cases[i].msg);
		ERR_clear_error();
		SSL_free(c);
		SSL_free(s);
		pki_client_free(cli);
	}
	pki_server_free(backend);
}

/* pki_client presenting a client certificate to a pki_server that requires one. */
static void test_upstream_mtls(void)
{
	struct pki_server *srv = srv_new("ca.crt", CRLS_ALL, false);
	struct pki_client_opts o = {.ca_file = P("srvca.crt"),
	                            .cert_file = P("valid.crt"),
	                            .key_file = P("valid.key"),
	                            .verify = true,
	                            .min_version = PKI_TLS13};
	struct pki_client_opts anon = {.ca_file = P("srvca.crt"), .verify = true};
	struct pki_client *cli = NULL, *cli_anon = NULL;
	char err[256] = "";
	const unsigned char *sel = NULL;
	unsigned sel_len = 0;
	int cs = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
	CU_ASSERT_EQUAL_FATAL(pki_client_new(&o, &cli, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL_FATAL(pki_client_new(&anon, &cli_anon, err, sizeof(err)), 0);
	SSL *c = pki_client_ssl_new(cli, "backend.test");
	SSL *s = SSL_new(pki_server_get0_ctx(srv));
	CU_ASSERT_EQUAL(tp_handshake(c, s, &cs), 0);
	CU_ASSERT_EQUAL(cs, 1);
	CU_ASSERT_EQUAL(pki_ssl_reason(s), PKI_OK);
	CU_ASSERT_EQUAL(SSL_version(s), TLS1_3_VERSION);
	SSL_get0_alpn_selected(c, &sel, &sel_len);
	CU_ASSERT(sel_len == 8 && memcmp(sel, "http/1.1", 8) == 0);
	SSL_free(c);
	SSL_free(s);

	c = pki_client_ssl_new(cli_anon, "backend.test");
	s = SSL_new(pki_server_get0_ctx(srv));
	CU_ASSERT_EQUAL(tp_handshake(c, s, &cs), -1);
	ERR_clear_error();
	CU_ASSERT_EQUAL(pki_ssl_reason(s), PKI_NO_CERT);
	SSL_free(c);
	SSL_free(s);
	pki_client_free(cli);
	pki_client_free(cli_anon);
	pki_server_free(srv);
}

/* ---- session tickets ---- */

/* Full handshake, then a resumption attempt with the session it produced. */
static SSL_SESSION *first_session(SSL_CTX *cctx, struct pki_server *srv)
{
	SSL *c = NULL;
	int rc = -1;
	SSL *s = connect_pair(cctx, pki_server_get0_ctx(srv), &c, &rc);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_FALSE(SSL_session_reused(s));
	SSL_SESSION *sess = SSL_get1_session(c);
	/* Without close_notify SSL_free marks the session unresumable, as it should (and on
	 * the server drops it from the session cache). */
	SSL_shutdown(s);
	SSL_shutdown(c);
	SSL_free(c);
	SSL_free(s);
	return sess;
}

static bool resumes(SSL_CTX *cctx, struct pki_server *srv, SSL_SESSION *sess)
{
	SSL *c = SSL_new(cctx);
	SSL *s = SSL_new(pki_server_get0_ctx(srv));
	SSL_set_session(c, sess);
	int rc = tp_handshake(c, s, NULL);
	bool reused = rc == 0 && SSL_session_reused(s);
	/* A resumed session still carries the verified client certificate. */
	if (reused) {
		CU_ASSERT_EQUAL(pki_ssl_reason(s), PKI_OK);
		CU_ASSERT_EQUAL(X509_cmp(SSL_get0_peer_certificate(s), fx.leaf[CK_VALID]), 0);
	}
	/* else SSL_free marks sess unresumable (the server's copy too) */
	SSL_shutdown(s);
	SSL_shutdown(c);
	ERR_clear_error();
	SSL_free(c);
	SSL_free(s);
	return reused;
}

static void test_tickets(void)
{
	struct pki_server *srv = srv_new("ca.crt", CRLS_ALL, true);
	struct pki_server *same_trust = srv_new("ca.crt", CRLS_ALL, true);
	struct pki_server *stateful = srv_new("ca.crt", CRLS_ALL, false);
	struct pki_server *stateful2 = srv_new("ca.crt", CRLS_ALL, false);
	SSL_CTX *cctx = cli_ctx(CK_VALID, 0);

	CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
	CU_ASSERT_PTR_NOT_NULL_FATAL(same_trust);
	CU_ASSERT_PTR_NOT_NULL_FATAL(stateful);
	CU_ASSERT_PTR_NOT_NULL_FATAL(stateful2);
	SSL_SESSION *sess = first_session(cctx, srv);
	CU_ASSERT_PTR_NOT_NULL_FATAL(sess);
	CU_ASSERT_TRUE(SSL_SESSION_is_resumable(sess));
	CU_ASSERT_TRUE(resumes(cctx, srv, sess));
	/* Different ticket keys: the other listener cannot open the ticket. */
	CU_ASSERT_FALSE(resumes(cctx, same_trust, sess));
	CU_ASSERT_EQUAL(pki_server_rotate_tickets(srv), 0);
	CU_ASSERT_TRUE(resumes(cctx, srv, sess)); /* previous key still decrypts */
	CU_ASSERT_EQUAL(pki_server_rotate_tickets(srv), 0);
	CU_ASSERT_FALSE(resumes(cctx, srv, sess)); /* two rotations: gone */
	SSL_SESSION_free(sess);

	/* session_tickets false: still one (stateful) ticket, resumed from the server cache. */
	sess = first_session(cctx, stateful);
	CU_ASSERT_PTR_NOT_NULL_FATAL(sess);
	CU_ASSERT_TRUE(SSL_SESSION_is_resumable(sess));
	CU_ASSERT_TRUE(resumes(cctx, stateful, sess));
	/* The cache belongs to the context (listener and generation): not another one's. */
	CU_ASSERT_FALSE(resumes(cctx, stateful2, sess));
	CU_ASSERT_EQUAL(pki_server_rotate_tickets(stateful), 0); /* no keys: a no-op */
	CU_ASSERT_TRUE(resumes(cctx, stateful, sess));
	SSL_SESSION_free(sess);
	SSL_CTX_free(cctx);
	pki_server_free(srv);
	pki_server_free(same_trust);
	pki_server_free(stateful);
	pki_server_free(stateful2);
}

/* ---- resumption chains, identity, lifetime ---- */

struct conn_result {
	bool ok, reused, identity;
	enum pki_reason reason;   /* pki_ssl_reason of the server side */
	enum pki_reason reverify; /* pki_server_reverify against the same server */
	long timeout;             /* of the server's session */
};

/*
 * One connection as kind offering sess (NULL: none). Both sides close with close_notify:
 * OpenSSL drops the session of an SSL freed without it from the server's cache. Returns
 * the client's session once the server's ticket is read: the one to offer next.
 */
static SSL_SESSION *conn_once(SSL_CTX *cctx, struct pki_server *srv, SSL_SESSION *sess,
                              enum ck kind, struct conn_result *r)
{
	SSL *c = SSL_new(cctx);
	SSL *s = SSL_new(pki_server_get0_ctx(srv));
	SSL_SESSION *next = NULL;

	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	memset(r, 0, sizeof(*r));
	if (sess)
		SSL_set_session(c, sess);
	r->ok = tp_handshake(c, s, NULL) == 0;
	ERR_clear_error();
	r->reason = pki_ssl_reason(s);
	if (r->ok) {
		X509 *peer = SSL_get0_peer_certificate(s);
		r->reused = SSL_session_reused(s);
		r->identity = peer && fx.leaf[kind] && X509_cmp(peer, fx.leaf[kind]) == 0;
		r->reverify = pki_server_reverify(srv, s);
		r->timeout = SSL_SESSION_get_timeout(SSL_get_session(s));
		next = SSL_get1_session(c);
		SSL_shutdown(s);
		SSL_shutdown(c);
	}
	ERR_clear_error();
	SSL_free(c);
	SSL_free(s);
	return next;
}

/* Whether two sessions carry different tickets (TLS 1.3: a new ticket was issued). */
static bool new_ticket(const SSL_SESSION *a, const SSL_SESSION *b)
{
	const unsigned char *ta = NULL, *tb = NULL;
	size_t la = 0, lb = 0;
	SSL_SESSION_get0_ticket(a, &ta, &la);
	SSL_SESSION_get0_ticket(b, &tb, &lb);
	return la > 0 && lb > 0 && (la != lb || memcmp(ta, tb, la) != 0);
}

/*
 * Two clients take turns reconnecting, each offering the session its last connection gave
 * it: every reconnection resumes (not every other one), carries the client's own verified
 * certificate, and in TLS 1.3 brings a fresh ticket. Stateful and stateless alike.
 */
static void chain_case(bool stateless, int ver)
{
	struct pki_server *srv = srv_new("ca.crt", CRLS_ALL, stateless);
	struct pki_server *now = srv_new("ca.crt", CRLS_REVOKE_VALID, stateless);
	const enum ck kinds[2] = {CK_VALID, CK_CHAIN};
	SSL_CTX *cctx[2] = {cli_ctx(CK_VALID, ver), cli_ctx(CK_CHAIN, ver)};
	SSL_SESSION *sess[2] = {NULL, NULL};
	struct conn_result r;

	CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
	CU_ASSERT_PTR_NOT_NULL_FATAL(now);
	for (int round = 0; round < 4; round++) {
		for (int i = 0; i < 2; i++) {
			SSL *probe = NULL;
			SSL_SESSION *next = conn_once(cctx[i], srv, sess[i], kinds[i], &r);
			if (r.reused != (round > 0))
				fprintf(stderr, "\n  %s TLS %x client %d round %d: %s\n",
				        stateless ? "stateless" : "stateful", ver, i, round,
				        r.reused ? "resumed" : "full handshake");
			CU_ASSERT_TRUE(r.ok);
			CU_ASSERT_EQUAL(r.reused, round > 0);
			CU_ASSERT_TRUE(r.identity);
			CU_ASSERT_EQUAL(r.reason, PKI_OK);
			CU_ASSERT_EQUAL(r.timeout, 300);
			/* The stateful cache keeps the peer's chain, so this re-verifies. */
			if (!stateless || round == 0)
				CU_ASSERT_EQUAL(r.reverify, PKI_OK);
			CU_ASSERT_PTR_NOT_NULL_FATAL(next);
			CU_ASSERT_TRUE(SSL_SESSION_is_resumable(next));
			if (ver == TLS1_3_VERSION && sess[i])
				CU_ASSERT_TRUE(new_ticket(sess[i], next));
			/* TLS 1.2 resumes the session it has; TLS 1.3 uses each ticket once. */
			if (ver == TLS1_3_VERSION || !sess[i]) {
				SSL_SESSION_free(sess[i]);
				sess[i] = next;
			} else {
				SSL_SESSION_free(next);
			}
			/* A resumed connection re-checked after a CRL update is cut off. */
			if (i == 0 && round > 0) {
				SSL *c = SSL_new(cctx[0]);
				probe = SSL_new(pki_server_get0_ctx(srv));
				SSL_set_session(c, sess[0]);
				CU_ASSERT_EQUAL(tp_handshake(c, probe, NULL), 0);
				CU_ASSERT_TRUE(SSL_session_reused(probe));
				CU_ASSERT_EQUAL(pki_server_reverify(now, probe), PKI_REVOKED);
				SSL_shutdown(probe);
				SSL_shutdown(c);
				SSL_free(c);
				SSL_free(probe);
				ERR_clear_error();
			}
		}
	}
	for (int i = 0; i < 2; i++) {
		SSL_SESSION_free(sess[i]);
		SSL_CTX_free(cctx[i]);
	}
	pki_server_free(srv);
	pki_server_free(now);
}

static void test_resumption_chain(void)
{
	chain_case(false, TLS1_3_VERSION);
	chain_case(true, TLS1_3_VERSION);
	chain_case(false, TLS1_2_VERSION);
	chain_case(true, TLS1_2_VERSION);
}

/*
 * A session never outlives the client certificate: its timeout (and the TLS 1.3 ticket
 * lifetime hint) stops at notAfter, also on the sessions that resumptions make, and past
 * notAfter a resumption attempt is a full handshake that refuses the expired certificate.
 */
static void test_resumption_cert_expiry(void)
{
	struct {
		bool stateless;
		int ver;
	} cases[] = {{false, TLS1_3_VERSION},
	             {true, TLS1_3_VERSION},
	             {false, TLS1_2_VERSION},
	             {true, TLS1_2_VERSION}};
	enum { N = sizeof(cases) / sizeof(cases[0]) };
	struct tp_spec brief = {"brief", 21, false, NULL, "clientAuth", NULL, 0, 2};
	struct pki_server *srv[N];
	SSL_CTX *soon[N], *bctx[N];
	SSL_SESSION *bsess[N];
	X509 *bx = NULL;
	EVP_PKEY *bkey = NULL;
	struct conn_result r;

	CU_ASSERT_EQUAL_FATAL(tp_mint(&brief, fx.ca, fx.ca_key, &bx, &bkey), 0);
	for (int i = 0; i < N; i++) {
		srv[i] = srv_new("ca.crt", CRLS_ALL, cases[i].stateless);
		soon[i] = cli_ctx(CK_SOON, cases[i].ver);
		bctx[i] = cli_ctx(CK_NONE, cases[i].ver);
		CU_ASSERT_PTR_NOT_NULL_FATAL(srv[i]);
		/* A lifetime longer than the certificate has left, so the cap is what shows. */
		SSL_CTX_set_timeout(pki_server_get0_ctx(srv[i]), 7200);
		SSL_CTX_use_certificate(bctx[i], bx);
		SSL_CTX_use_PrivateKey(bctx[i], bkey);

		SSL_SESSION *sess = conn_once(soon[i], srv[i], NULL, CK_SOON, &r);
		CU_ASSERT_TRUE(r.ok);
		CU_ASSERT_TRUE(r.timeout > 500 && r.timeout <= 600);
		CU_ASSERT_PTR_NOT_NULL_FATAL(sess);
		if (cases[i].ver == TLS1_3_VERSION)
			CU_ASSERT_TRUE(SSL_SESSION_get_ticket_lifetime_hint(sess) <= 600);
		SSL_SESSION *next = conn_once(soon[i], srv[i], sess, CK_SOON, &r);
		CU_ASSERT_TRUE(r.ok && r.reused && r.identity);
		CU_ASSERT_TRUE(r.timeout > 500 && r.timeout <= 600);
		CU_ASSERT_PTR_NOT_NULL_FATAL(next);
		if (cases[i].ver == TLS1_3_VERSION)
			CU_ASSERT_TRUE(SSL_SESSION_get_ticket_lifetime_hint(next) <= 600);
		SSL_SESSION_free(sess);
		SSL_SESSION_free(next);

		/* A certificate with two seconds left: resumable now, not after it expired. */
		bsess[i] = conn_once(bctx[i], srv[i], NULL, CK_NONE, &r);
		CU_ASSERT_TRUE(r.ok);
		CU_ASSERT_TRUE(r.timeout <= 2);
		CU_ASSERT_PTR_NOT_NULL_FATAL(bsess[i]);
	}
	sleep(3);
	for (int i = 0; i < N; i++) {
		SSL_SESSION *next = conn_once(bctx[i], srv[i], bsess[i], CK_NONE, &r);
		if (r.ok)
			fprintf(stderr, "\n  %s TLS %x: expired certificate %s\n",
			        cases[i].stateless ? "stateless" : "stateful", cases[i].ver,
			        r.reused ? "resumed" : "accepted");
		CU_ASSERT_FALSE(r.ok);
		CU_ASSERT_FALSE(r.reused);
		CU_ASSERT_EQUAL(r.reason, PKI_EXPIRED);
		SSL_SESSION_free(next);
		SSL_SESSION_free(bsess[i]);
		SSL_CTX_free(soon[i]);
		SSL_CTX_free(bctx[i]);
		pki_server_free(srv[i]);
	}
	X509_free(bx);
	EVP_PKEY_free(bkey);
}

/* ---- verified-chain cache (vcache.c) ---- */

/* A listener trusting ca.crt with these CRL files (names in the fixture directory). */
static struct pki_server *srv_crls(const char *const *crl_names, size_t n, unsigned grace,
                                   bool no_cache)
{
	const char *files[4];
	struct pki_server_opts o = {
	    .cert_file = P("server.crt"),
	    .key_file = P("server.key"),
	    .client_ca_file = P("ca.crt"),
	    .require_client_cert = true,
	    .crl_files = files,
	    .n_crl_files = n,
	    .crl_grace = grace,
	    .no_verify_cache = no_cache,
	};
	struct pki_server *srv = NULL;
	char err[512] = "";

	for (size_t i = 0; i < n && i < 4; i++)
		files[i] = P(crl_names[i]);
	if (pki_server_new(&o, &srv, err, sizeof(err)) < 0)
		fprintf(stderr, "pki_server_new: %s\n", err);
	return srv;
}

/* A client context presenting x (and its key), with optional extra chain certificates. */
static SSL_CTX *cli_with(X509 *x, EVP_PKEY *key, X509 *extra, int max_ver)
{
	SSL_CTX *c = cli_ctx(CK_NONE, max_ver);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	SSL_CTX_use_certificate(c, x);
	SSL_CTX_use_PrivateKey(c, key);
	if (extra)
		SSL_CTX_add1_chain_cert(c, extra);
	return c;
}

struct vc_result {
	bool ok;
	enum pki_reason reason;
	long verify;   /* SSL_get_verify_result of the server */
	bool identity; /* the server's peer certificate is want */
	bool built;    /* a verified chain was built, i.e. X509_verify_cert ran */
};

/* One full handshake (no session offered), as the server saw it. */
static void vc_connect(SSL_CTX *cctx, struct pki_server *srv, X509 *want, struct vc_result *r)
{
	int rc = -1;
	SSL *s = connect_pair(cctx, pki_server_get0_ctx(srv), NULL, &rc);
	X509 *peer = SSL_get0_peer_certificate(s);

	r->ok = rc == 0;
	r->reason = pki_ssl_reason(s);
	r->verify = SSL_get_verify_result(s);
	r->identity = peer && want && X509_cmp(peer, want) == 0;
	r->built = SSL_get0_verified_chain(s) != NULL;
	CU_ASSERT_FALSE(SSL_session_reused(s));
	SSL_free(s);
	ERR_clear_error();
}

static bool stats_are(const struct pki_server *srv, uint64_t hits, uint64_t misses,
                      const char *what)
{
	uint64_t h = 99, m = 99;
	pki_server_vcache_stats(srv, &h, &m);
	if (h != hits || m != misses)
		fprintf(stderr, "\n  %s: %llu hits %llu misses, want %llu %llu\n", what,
		        (unsigned long long)h, (unsigned long long)m, (unsigned long long)hits,
		        (unsigned long long)misses);
	return h == hits && m == misses;
}

/*
 * The same chain again is answered from the cache (no chain built) with the same outcome;
 * another leaf, or the same leaf with other certificates sent along, is verified in full.
 */
static void vcache_hits_case(int ver)
{
	struct pki_server *srv = srv_new("ca.crt", CRLS_ALL, false);
	SSL_CTX *valid = cli_ctx(CK_VALID, ver), *chain = cli_ctx(CK_CHAIN, ver);
	SSL_CTX *padded = cli_with(fx.leaf[CK_VALID], fx.lkey[CK_VALID], fx.inter, ver);
	struct vc_result r;

	CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
	CU_ASSERT_TRUE(stats_are(srv, 0, 0, "new"));
	for (int i = 0; i < 3; i++) {
		vc_connect(valid, srv, fx.leaf[CK_VALID], &r);
		CU_ASSERT_TRUE(r.ok && r.identity);
		CU_ASSERT_EQUAL(r.reason, PKI_OK);
		CU_ASSERT_EQUAL(r.verify, X509_V_OK);
		CU_ASSERT_EQUAL(r.built, i == 0);
		CU_ASSERT_TRUE(stats_are(srv, (uint64_t)i, 1, "valid"));
	}
	/* Another leaf (through an intermediate): a miss, then a hit of its own. */
	for (int i = 0; i < 2; i++) {
		vc_connect(chain, srv, fx.leaf[CK_CHAIN], &r);
		CU_ASSERT_TRUE(r.ok && r.identity);
		CU_ASSERT_EQUAL(r.verify, X509_V_OK);
		CU_ASSERT_EQUAL(r.built, i == 0);
	}
	CU_ASSERT_TRUE(stats_are(srv, 3, 2, "chain"));
	/* The valid leaf with an extra certificate sent along is another input. */
	vc_connect(padded, srv, fx.leaf[CK_VALID], &r);
	CU_ASSERT_TRUE(r.ok && r.identity && r.built);
	CU_ASSERT_TRUE(stats_are(srv, 3, 3, "padded"));
	vc_connect(valid, srv, fx.leaf[CK_VALID], &r);
	CU_ASSERT_TRUE(r.ok && r.identity && !r.built);
	CU_ASSERT_TRUE(stats_are(srv, 4, 3, "valid again"));
	SSL_CTX_free(valid);
	SSL_CTX_free(chain);
	SSL_CTX_free(padded);
	pki_server_free(srv);
}

static void test_vcache_hits(void)
{
	vcache_hits_case(TLS1_3_VERSION);
	vcache_hits_case(TLS1_2_VERSION);
}

/* no_verify_cache: every full handshake verifies, nothing is counted. */
static void test_vcache_off(void)
{
	const char *crls[] = {"ca.crl", "inter.crl"};
	struct pki_server *srv = srv_crls(crls, 2, 0, true);
	SSL_CTX *valid = cli_ctx(CK_VALID, 0);
	struct vc_result r;

	CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
	for (int i = 0; i < 2; i++) {
		vc_connect(valid, srv, fx.leaf[CK_VALID], &r);
		CU_ASSERT_TRUE(r.ok && r.identity && r.built);
	}
	CU_ASSERT_TRUE(stats_are(srv, 0, 0, "off"));
	SSL_CTX_free(valid);
	pki_server_free(srv);
}

/* A refused chain is verified (and its reason recorded) on every attempt. */
static void test_vcache_refusals(void)
{
	static const struct {
		enum ck kind;
		enum pki_reason want;
	} cases[] = {
	    {CK_REVOKED, PKI_REVOKED},   {CK_UNTRUSTED, PKI_UNKNOWN_CA}, {CK_EXPIRED, PKI_EXPIRED},
	    {CK_LEAFCA, PKI_LEAF_IS_CA}, {CK_BADEKU, PKI_BAD_EKU},
	};
	struct pki_server *srv = srv_new("ca.crt", CRLS_ALL, false);
	uint64_t misses = 0;
	struct vc_result r;

	CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		SSL_CTX *cctx = cli_ctx(cases[i].kind, 0);
		for (int n = 0; n < 3; n++) {
			vc_connect(cctx, srv, NULL, &r);
			if (r.ok || r.reason != cases[i].want)
				fprintf(stderr, "\n  refusal %zu attempt %d: %s\n", i, n,
				        r.ok ? "accepted" : pki_reason_str(r.reason));
			CU_ASSERT_FALSE(r.ok);
			CU_ASSERT_EQUAL(r.reason, cases[i].want);
			CU_ASSERT_TRUE(stats_are(srv, 0, ++misses, "refusal"));
		}
		SSL_CTX_free(cctx);
	}
	pki_server_free(srv);
}

/*
 * An entry ends with the certificate it was made for, and with the CRLs it was checked
 * against: a leaf with three seconds left, and a CRL whose nextUpdate is three seconds
 * away, are accepted from the cache until then and refused once past it.
 */
static void test_vcache_expiry(void)
{
	struct tp_spec brief = {"vc-brief", 22, false, NULL, "clientAuth", NULL, 0, 3};
	const long revoked[] = {14};
	X509_CRL *crl = tp_crl(fx.ca, fx.ca_key, revoked, 1, 3);
	const char *short_crl[] = {"vc-short.crl"};
	const char *crls[] = {"ca.crl"};
	X509 *bx = NULL;
	EVP_PKEY *bkey = NULL;
	struct vc_result r;

	CU_ASSERT_PTR_NOT_NULL_FATAL(crl);
	CU_ASSERT_EQUAL_FATAL(tp_write_crl(fx.dir, "vc-short.crl", crl), 0);
	X509_CRL_free(crl);
	CU_ASSERT_EQUAL_FATAL(tp_mint(&brief, fx.ca, fx.ca_key, &bx, &bkey), 0);
	struct pki_server *srv = srv_crls(crls, 1, 0, false);
	struct pki_server *srv_short = srv_crls(short_crl, 1, 0, false);
	SSL_CTX *bctx = cli_with(bx, bkey, NULL, 0);
	SSL_CTX *valid = cli_ctx(CK_VALID, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
	CU_ASSERT_PTR_NOT_NULL_FATAL(srv_short);

	for (int i = 0; i < 2; i++) {
		vc_connect(bctx, srv, bx, &r);
		CU_ASSERT_TRUE(r.ok && r.identity);
		CU_ASSERT_EQUAL(r.built, i == 0);
		vc_connect(valid, srv_short, fx.leaf[CK_VALID], &r);
		CU_ASSERT_TRUE(r.ok && r.identity);
		CU_ASSERT_EQUAL(r.built, i == 0);
	}
	CU_ASSERT_TRUE(stats_are(srv, 1, 1, "brief leaf"));
	CU_ASSERT_TRUE(stats_are(srv_short, 1, 1, "short CRL"));
	sleep(4);
	vc_connect(bctx, srv, bx, &r);
	CU_ASSERT_FALSE(r.ok);
	CU_ASSERT_EQUAL(r.reason, PKI_EXPIRED);
	CU_ASSERT_TRUE(stats_are(srv, 1, 2, "brief leaf, expired"));
	vc_connect(valid, srv_short, fx.leaf[CK_VALID], &r);
	CU_ASSERT_FALSE(r.ok);
	CU_ASSERT_EQUAL(r.reason, PKI_CRL_PROBLEM);
	CU_ASSERT_TRUE(stats_are(srv_short, 1, 2, "short CRL, expired"));
	SSL_CTX_free(bctx);
	SSL_CTX_free(valid);
	pki_server_free(srv);
	pki_server_free(srv_short);
	X509_free(bx);
	EVP_PKEY_free(bkey);
}

/* A reload builds a new server: a CRL that now revokes a cached leaf takes effect at once. */
static void test_vcache_reload(void)
{
	struct pki_server *old = srv_new("ca.crt", CRLS_ALL, false);
	SSL_CTX *valid = cli_ctx(CK_VALID, 0);
	struct vc_result r;

	CU_ASSERT_PTR_NOT_NULL_FATAL(old);
	for (int i = 0; i < 2; i++) {
		vc_connect(valid, old, fx.leaf[CK_VALID], &r);
		CU_ASSERT_TRUE(r.ok);
	}
	CU_ASSERT_TRUE(stats_are(old, 1, 1, "old"));
	struct pki_server *now = srv_new("ca.crt", CRLS_REVOKE_VALID, false);
	CU_ASSERT_PTR_NOT_NULL_FATAL(now);
	for (int i = 0; i < 2; i++) {
		vc_connect(valid, now, NULL, &r);
		CU_ASSERT_FALSE(r.ok);
		CU_ASSERT_EQUAL(r.reason, PKI_REVOKED);
	}
	CU_ASSERT_TRUE(stats_are(now, 0, 2, "reloaded"));
	/* The old generation, serving until drained, keeps its own trust and cache. */
	vc_connect(valid, old, fx.leaf[CK_VALID], &r);
	CU_ASSERT_TRUE(r.ok && !r.built);
	SSL_CTX_free(valid);
	pki_server_free(old);
	pki_server_free(now);
}

/* An accept that needed an expired CRL's grace period is never kept. */
static void test_vcache_crl_grace(void)
{
	X509_CRL *crl = tp_crl(fx.ca, fx.ca_key, NULL, 0, -30); /* expired 30 s ago */
	const char *stale[] = {"vc-stale.crl"};
	struct vc_result r;

	CU_ASSERT_PTR_NOT_NULL_FATAL(crl);
	CU_ASSERT_EQUAL_FATAL(tp_write_crl(fx.dir, "vc-stale.crl", crl), 0);
	X509_CRL_free(crl);
	struct pki_server *grace = srv_crls(stale, 1, 3600, false);
	struct pki_server *strict = srv_crls(stale, 1, 0, false);
	SSL_CTX *valid = cli_ctx(CK_VALID, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(grace);
	CU_ASSERT_PTR_NOT_NULL_FATAL(strict);
	for (int i = 0; i < 3; i++) {
		vc_connect(valid, grace, fx.leaf[CK_VALID], &r);
		CU_ASSERT_TRUE(r.ok && r.identity && r.built);
		vc_connect(valid, strict, NULL, &r);
		CU_ASSERT_FALSE(r.ok);
		CU_ASSERT_EQUAL(r.reason, PKI_CRL_PROBLEM);
	}
	CU_ASSERT_TRUE(stats_are(grace, 0, 3, "grace"));
	CU_ASSERT_TRUE(stats_are(strict, 0, 3, "strict"));
	SSL_CTX_free(valid);
	pki_server_free(grace);
	pki_server_free(strict);
}

/* Worker threads share one listener's cache. */
struct vc_thread {
	struct pki_server *srv;
	SSL_CTX *cctx[2];
	int ok, failed;
};

static void *vc_thread_main(void *arg)
{
	struct vc_thread *t = arg;
	for (int i = 0; i < 40; i++) {
		SSL *c = SSL_new(t->cctx[i % 2]);
		SSL *s = SSL_new(pki_server_get0_ctx(t->srv));
		bool ok = c && s && tp_handshake(c, s, NULL) == 0 && pki_ssl_reason(s) == PKI_OK &&
		          SSL_get_verify_result(s) == X509_V_OK;
		if (ok)
			t->ok++;
		else
			t->failed++;
		ERR_clear_error();
		SSL_free(c);
		SSL_free(s);
	}
	return NULL;
}

static void test_vcache_threads(void)
{
	struct pki_server *srv = srv_new("ca.crt", CRLS_ALL, false);
	SSL_CTX *cctx[2] = {cli_ctx(CK_VALID, 0), cli_ctx(CK_CHAIN, 0)};
	struct vc_thread t[4];
	pthread_t th[4];
	uint64_t hits = 0, misses = 0;
	int ok = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
	for (int i = 0; i < 4; i++) {
		t[i] = (struct vc_thread){.srv = srv, .cctx = {cctx[0], cctx[1]}};
		CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, vc_thread_main, &t[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		ok += t[i].ok;
		CU_ASSERT_EQUAL(t[i].failed, 0);
	}
	pki_server_vcache_stats(srv, &hits, &misses);
	CU_ASSERT_EQUAL(ok, 160);
	CU_ASSERT_EQUAL(hits + misses, 160);
	/* At most one miss per client and thread (the first one of each may race). */
	CU_ASSERT(misses >= 2 && misses <= 8);
	SSL_CTX_free(cctx[0]);
	SSL_CTX_free(cctx[1]);
	pki_server_free(srv);
}

/* ---- SNI ---- */

/*
 * TLS 1.2 takes the server name of a resumed connection from the session: the name sent in
 * the full handshake must have been kept there. TLS 1.3 reports each handshake's own.
 */
static void sni_case(bool stateless, int ver)
{
	struct pki_server *srv = srv_new("ca.crt", CRLS_ALL, stateless);
	SSL_CTX *cctx = cli_ctx(CK_VALID, ver);
	SSL_SESSION *sess = NULL;

	CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
	for (int round = 0; round < 3; round++) {
		SSL *c = SSL_new(cctx);
		SSL *s = SSL_new(pki_server_get0_ctx(srv));
		CU_ASSERT_PTR_NOT_NULL_FATAL(c);
		CU_ASSERT_PTR_NOT_NULL_FATAL(s);
		SSL_set_tlsext_host_name(c, "gw.example.test");
		if (sess)
			SSL_set_session(c, sess);
		CU_ASSERT_EQUAL(tp_handshake(c, s, NULL), 0);
		CU_ASSERT_EQUAL(SSL_session_reused(s), round > 0);
		const char *name = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
		if (!name || strcmp(name, "gw.example.test") != 0)
			fprintf(stderr, "\n  %s TLS %x round %d: server name %s\n",
			        stateless ? "stateless" : "stateful", ver, round,
			        name ? name : "(none)");
		CU_ASSERT_PTR_NOT_NULL(name);
		CU_ASSERT(name && strcmp(name, "gw.example.test") == 0);
		SSL_SESSION_free(sess);
		sess = SSL_get1_session(c);
		SSL_shutdown(s);
		SSL_shutdown(c);
		ERR_clear_error();
		SSL_free(c);
		SSL_free(s);
	}
	SSL_SESSION_free(sess);
	SSL_CTX_free(cctx);
	pki_server_free(srv);
}

static void test_sni_resumed(void)
{
	sni_case(false, TLS1_2_VERSION);
	sni_case(true, TLS1_2_VERSION);
	sni_case(false, TLS1_3_VERSION);
	sni_case(true, TLS1_3_VERSION);
}

/* SSLs outlive their pki_server: ticket keys and ALPN data live in the SSL_CTX. */
static void test_ssl_outlives_server(void)
{
	struct pki_server *srv = srv_new("ca.crt", CRLS_NONE, true);
	SSL_CTX *cctx = cli_ctx(CK_VALID, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
	SSL *c = SSL_new(cctx);
	SSL *s = SSL_new(pki_server_get0_ctx(srv));
	SSL_set_alpn_protos(c, (const unsigned char *)"\x08http/1.1", 9);
	pki_server_free(srv);
	CU_ASSERT_EQUAL(tp_handshake(c, s, NULL), 0);
	CU_ASSERT_EQUAL(pki_ssl_reason(s), PKI_OK);
	SSL_free(c);
	SSL_free(s);
	SSL_CTX_free(cctx);
}

CU_SUITE(pki, suite_init, suite_clean, {"handshake_tls13", test_handshake_tls13},
         {"handshake_tls12", test_handshake_tls12}, {"server_errors", test_server_errors},
         {"client_errors", test_client_errors},
         {"reverify_after_revocation", test_reverify_after_revocation},
         {"trust_digest", test_trust_digest}, {"cert_expiry", test_cert_expiry},
         {"check_client_leaf", test_check_client_leaf}, {"reason_str", test_reason_str},
         {"alpn", test_alpn}, {"upstream_names", test_upstream_names},
         {"upstream_mtls", test_upstream_mtls}, {"tickets", test_tickets},
         {"resumption_chain", test_resumption_chain},
         {"resumption_cert_expiry", test_resumption_cert_expiry}, {"vcache_hits", test_vcache_hits},
         {"vcache_off", test_vcache_off}, {"vcache_refusals", test_vcache_refusals},
         {"vcache_expiry", test_vcache_expiry}, {"vcache_reload", test_vcache_reload},
         {"vcache_crl_grace", test_vcache_crl_grace}, {"vcache_threads", test_vcache_threads},
         {"sni_resumed", test_sni_resumed}, {"ssl_outlives_server", test_ssl_outlives_server})
