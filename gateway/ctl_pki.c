/*
 * ctl_pki.c: `gatewayctl pki ...`, a small private CA for the gateway's clients.
 *   init     a CA directory (ca.crt, ca.key, index.txt, crl.pem)
 *   issue    a client (default) or server certificate and its 0600 key
 *   revoke   a serial or certificate file, with an RFC 5280 reason
 *   crl      crl.pem regenerated from the index with a fresh nextUpdate
 *   list     every issued certificate with its status and expiry
 *   inspect  the identity exactly as the gateway derives it (authn_cert_id_from_x509) and,
 *            with -c, every path prefix that identity may reach under that config
 * All CA work is done by pki/ (certgen.c and friends); this file parses and prints.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/pem.h>

#include "authn.h"
#include "conf.h"
#include "pki.h"
#include "policy.h"

#define MAX_DNS      32
#define ALL_METHODS  ((POLICY_M_OTHER << 1) - 1)
#define MAX_PREFIXES 4096

int ctl_pki_main(int argc, char **argv);

static void pki_usage(FILE *f)
{
	fprintf(
	    f, "usage:\n"
	       "  gatewayctl pki init --dir D [--cn NAME] [--key ec|ed25519|rsa] [--days N]\n"
	       "  gatewayctl pki issue --dir D --cn NAME [--spiffe URI] [--dns NAME]...\n"
	       "        [--days N | --not-before T --not-after T] [--server]\n"
	       "        [--key ec|ed25519|rsa] [--out PREFIX]\n"
	       "  gatewayctl pki revoke --dir D (SERIAL|FILE) [--reason R]\n"
	       "  gatewayctl pki crl --dir D [--days N]\n"
	       "  gatewayctl pki list --dir D\n"
	       "  gatewayctl pki inspect FILE [-c CONF]\n"
	       "  T: 2025-06-01, 2025-06-01T12:00:00Z, 20250601120000Z, @UNIXTIME, now, +30d, -2h\n"
	       "  R: unspecified keyCompromise cACompromise affiliationChanged superseded\n"
	       "     cessationOfOperation privilegeWithdrawn\n");
}

static void date_text(time_t t, char out[32])
{
	struct tm tm;
	if (!gmtime_r(&t, &tm) || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		strcpy(out, "?");
}

static int parse_key(const char *s, enum pki_key_type *out)
{
	if (strcmp(s, "ec") == 0 || strcmp(s, "p256") == 0)
		*out = PKI_KEY_EC_P256;
	else if (strcmp(s, "ed25519") == 0)
		*out = PKI_KEY_ED25519;
	else if (strcmp(s, "rsa") == 0)
		*out = PKI_KEY_RSA;
	else
		return -1;
	return 0;
}

static int parse_days(const char *s, unsigned *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v == 0 || v > 100 * 366)
		return -1;
	*out = (unsigned)v;
	return 0;
}

/* A relative time: +30d, -2h, +90m, +10s. */
static int parse_relative(const char *s, time_t now, time_t *out)
{
	char *end;
	long v = strtol(s, &end, 10);
	long unit = 0;
	if (end == s || end[0] == '\0' || end[1] != '\0')
		return -1;
	switch (*end) {
	case 'd':
		unit = 86400;
		break;
	case 'h':
		unit = 3600;
		break;
	case 'm':
		unit = 60;
		break;
	case 's':
		unit = 1;
		break;
	default:
		return -1;
	}
	*out = now + (time_t)v * unit;
	return 0;
}

/* The time forms the usage lists; all UTC. */
static int parse_when(const char *s, time_t now, time_t *out)
{
	struct tm tm = {0};
	const char *end;

	if (strcmp(s, "now") == 0) {
		*out = now;
		return 0;
	}
	if (s[0] == '+' || s[0] == '-')
		return parse_relative(s, now, out);
	if (s[0] == '@') {
		char *e;
		long long v = strtoll(s + 1, &e, 10);
		if (s[1] == '\0' || *e != '\0')
			return -1;
		*out = (time_t)v;
		return 0;
	}
	if (!(end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm)) &&
	    !(end = strptime(s, "%Y%m%d%H%M%SZ", &tm)) && !(end = strptime(s, "%Y-%m-%d", &tm)))
		return -1;
	if (*end != '\0')
		return -1;
	*out = timegm(&tm);
	return 0;
}

/* Parses argv with opts; on_opt handles each option, -1 from it is a usage error. */
static int parse_opts(int argc, char **argv, const struct option *opts, void *arg,
                      int (*on_opt)(void *arg, int ch, const char *val))
{
	int ch;
	optind = 0; /* glibc: full re-initialisation for a second getopt run */
	while ((ch = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		if (ch == '?' || on_opt(arg, ch, optarg) < 0) {
			pki_usage(stderr);
			return -1;
		}
	}
	return optind;
}

/* ---------------------------------------------------------------- init -- */

static int init_opt(void *arg, int ch, const char *val)
{
	struct pki_ca_opts *o = arg;
	switch (ch) {
	case 'd':
		o->dir = val;
		return 0;
	case 'n':
		o->cn = val;
		return 0;
	case 'k':
		return parse_key(val, &o->key);
	case 'D':
		return parse_days(val, &o->days);
	default:
		return -1;
	}
}

static int cmd_init(int argc, char **argv)
{
	static const struct option opts[] = {{"dir", required_argument, NULL, 'd'},
	                                     {"cn", required_argument, NULL, 'n'},
	                                     {"key", required_argument, NULL, 'k'},
	                                     {"days", required_argument, NULL, 'D'},
	                                     {NULL, 0, NULL, 0}};
	struct pki_ca_opts o = {.now = time(NULL)};
	char err[1024];
	int i = parse_opts(argc, argv, opts, &o, init_opt);

	if (i < 0 || i != argc || !o.dir) {
		if (i >= 0)
			pki_usage(stderr);
		return 2;
	}
	if (pki_ca_init(&o, err, sizeof(err)) != 0) {
		fprintf(stderr, "pki init: %s\n", err);
		return 1;
	}
	printf("CA created in %s: ca.crt, ca.key (0600), index.txt, crl.pem\n", o.dir);
	printf("configure listeners[].tls.client_ca = \"%s/ca.crt\" and crl = [ \"%s/crl.pem\" ]\n",
	       o.dir, o.dir);
	return 0;
}

/* ---------------------------------------------------------------- issue -- */

struct issue_args {
	struct pki_issue_opts o;
	const char *dns[MAX_DNS];
	const char *nb, *na;
	unsigned days;
};

static int issue_opt(void *arg, int ch, const char *val)
{
	struct issue_args *a = arg;
	switch (ch) {
	case 'd':
		a->o.dir = val;
		return 0;
	case 'n':
		a->o.cn = val;
		return 0;
	case 'u':
		a->o.spiffe = val;
		return 0;
	case 'S':
		a->o.server = true;
		return 0;
	case 'o':
		a->o.out_prefix = val;
		return 0;
	case 'b':
		a->nb = val;
		return 0;
	case 'a':
		a->na = val;
		return 0;
	case 'k':
		return parse_key(val, &a->o.key);
	case 'D':
		return parse_days(val, &a->days);
	case 'N':
		if (a->o.n_dns == MAX_DNS)
			return -1;
		a->dns[a->o.n_dns++] = val;
		return 0;
	default:
		return -1;
	}
}

/* --days or --not-before/--not-after into the options; -1 with a message. */
static int issue_window(struct issue_args *a)
{
	if (a->days && (a->nb || a->na)) {
		fprintf(stderr,
		        "pki issue: --days and --not-before/--not-after exclude each other\n");
		return -1;
	}
	if (a->nb && parse_when(a->nb, a->o.now, &a->o.not_before) < 0) {
		fprintf(stderr, "pki issue: cannot read --not-before '%s'\n", a->nb);
		return -1;
	}
	if (a->na && parse_when(a->na, a->o.now, &a->o.not_after) < 0) {
		fprintf(stderr, "pki issue: cannot read --not-after '%s'\n", a->na);
		return -1;
	}
	if (a->days)
		a->o.not_after = a->o.now + (time_t)a->days * 86400;
	return 0;
}

static int cmd_issue(int argc, char **argv)
{
	static const struct option opts[] = {{"dir", required_argument, NULL, 'd'},
	                                     {"cn", required_argument, NULL, 'n'},
	                                     {"spiffe", required_argument, NULL, 'u'},
	                                     {"dns", required_argument, NULL, 'N'},
	                                     {"days", required_argument, NULL, 'D'},
	                                     {"not-before", required_argument, NULL, 'b'},
	                                     {"not-after", required_argument, NULL, 'a'},
	                                     {"server", no_argument, NULL, 'S'},
	                                     {"key", required_argument, NULL, 'k'},
	                                     {"out", required_argument, NULL, 'o'},
	                                     {NULL, 0, NULL, 0}};
	struct issue_args a = {.o = {.now = time(NULL)}};
	struct pki_issued out;
	char err[1024], when[32];
	int i = parse_opts(argc, argv, opts, &a, issue_opt);

	if (i < 0 || i != argc || !a.o.dir || !a.o.cn) {
		if (i >= 0)
			pki_usage(stderr);
		return 2;
	}
	a.o.dns = a.dns;
	if (a.o.spiffe && !authn_spiffe_id_valid(a.o.spiffe, strlen(a.o.spiffe))) {
		fprintf(stderr,
		        "pki issue: '%s' is not a valid SPIFFE ID (the gateway would ignore it)\n",
		        a.o.spiffe);
		return 1;
	}
	if (issue_window(&a) < 0)
		return 1;
	if (pki_issue(&a.o, &out, err, sizeof(err)) != 0) {
		fprintf(stderr, "pki issue: %s\n", err);
		return 1;
	}
	printf("serial      %s\ncertificate %s\nkey         %s (0600)\n", out.serial_hex,
	       out.cert_path, out.key_path);
	time_t na = 0;
	if (pki_cert_file_not_after(out.cert_path, &na, NULL, 0, err, sizeof(err)) == 0) {
		date_text(na, when);
		printf("not_after   %s\n", when);
	}
	return 0;
}

/* ------------------------------------------------------- revoke, crl, list -- */

struct revoke_args {
	const char *dir;
	enum pki_crl_reason reason;
	unsigned days;
};

static int revoke_opt(void *arg, int ch, const char *val)
{
	struct revoke_args *a = arg;
	switch (ch) {
	case 'd':
		a->dir = val;
		return 0;
	case 'r':
		return pki_crl_reason_parse(val, &a->reason);
	case 'D':
		return parse_days(val, &a->days);
	default:
		return -1;
	}
}

static int cmd_revoke(int argc, char **argv)
{
	static const struct option opts[] = {{"dir", required_argument, NULL, 'd'},
	                                     {"reason", required_argument, NULL, 'r'},
	                                     {NULL, 0, NULL, 0}};
	struct revoke_args a = {.reason = PKI_CRL_UNSPECIFIED};
	char err[1024], serial[PKI_SERIAL_HEX_MAX];
	int i = parse_opts(argc, argv, opts, &a, revoke_opt);

	if (i < 0 || i != argc - 1 || !a.dir) {
		if (i >= 0)
			pki_usage(stderr);
		return 2;
	}
	if (pki_revoke(a.dir, argv[i], a.reason, time(NULL), serial, err, sizeof(err)) != 0) {
		fprintf(stderr, "pki revoke: %s\n", err);
		return 1;
	}
	printf("revoked %s (%s)\nnext: gatewayctl pki crl --dir %s, then reload the gateway "
	       "(SIGHUP)\n",
	       serial, pki_crl_reason_str(a.reason), a.dir);
	return 0;
}

static int cmd_crl(int argc, char **argv)
{
	static const struct option opts[] = {{"dir", required_argument, NULL, 'd'},
	                                     {"days", required_argument, NULL, 'D'},
	                                     {NULL, 0, NULL, 0}};
	struct revoke_args a = {0};
	char err[1024], path[4200], when[32];
	time_t nu = 0;
	int i = parse_opts(argc, argv, opts, &a, revoke_opt);

	if (i < 0 || i != argc || !a.dir) {
		if (i >= 0)
			pki_usage(stderr);
		return 2;
	}
	if (pki_crl_generate(a.dir, a.days, time(NULL), err, sizeof(err)) != 0) {
		fprintf(stderr, "pki crl: %s\n", err);
		return 1;
	}
	snprintf(path, sizeof(path), "%s/crl.pem", a.dir);
	if (pki_crl_file_next_update(path, &nu, err, sizeof(err)) == 0) {
		date_text(nu, when);
		printf("%s written; next update %s\n", path, when);
	}
	return 0;
}

static int cmd_list(int argc, char **argv)
{
	static const struct option opts[] = {{"dir", required_argument, NULL, 'd'},
	                                     {NULL, 0, NULL, 0}};
	struct revoke_args a = {0};
	struct pki_ca_entry *v = NULL;
	size_t n = 0;
	char err[1024], when[32];
	time_t now = time(NULL);
	int i = parse_opts(argc, argv, opts, &a, revoke_opt);

	if (i < 0 || i != argc || !a.dir) {
		if (i >= 0)
			pki_usage(stderr);
		return 2;
	}
	if (pki_ca_list(a.dir, &v, &n, err, sizeof(err)) != 0) {
		fprintf(stderr, "pki list: %s\n", err);
		return 1;
	}
	printf("%-34s %-8s %-21s %s\n", "SERIAL", "STATUS", "NOT_AFTER", "CN");
	for (size_t k = 0; k < n; k++) {
		const char *status = v[k].revoked           ? "revoked"
		                     : v[k].not_after < now ? "expired"
		                                            : "valid";
		date_text(v[k].not_after, when);
		printf("%-34s %-8s %-21s %s\n", v[k].serial_hex, status, when, v[k].cn);
	}
	pki_ca_list_free(v, n);
	return 0;
}

/* -------------------------------------------------------------- inspect -- */

static X509 *cert_load(const char *file)
{
	FILE *f = fopen(file, "r");
	X509 *x = NULL;
	if (!f) {
		perror(file);
		return NULL;
	}
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!x)
		fprintf(stderr, "%s: not a PEM certificate\n", file);
	return x;
}

int ctl_inspect(const char *file); /* gatewayctl.c: the fields of `gatewayctl inspect` */

/* Candidate prefixes: every route and every prefix any rule grants or denies at. */
struct reach {
	char *v[MAX_PREFIXES];
	size_t n;
	bool oom;
};

static void reach_add(struct reach *r, const char *prefix)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->v[i], prefix) == 0)
			return;
	if (r->n == MAX_PREFIXES || !(r->v[r->n] = strdup(prefix))) {
		r->oom = true;
		return;
	}
	r->n++;
}

static void reach_grant_cb(void *arg, const struct policy_grant *g)
{
	reach_add(arg, g->prefix);
}

static int reach_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Methods the principal may use on exactly this path, decided by policy_decide. */
static unsigned reach_methods(const struct policy *p, const struct authn_principal *who,
                              const char *path)
{
	unsigned allowed = 0;
	for (unsigned bit = 1; bit <= POLICY_M_OTHER; bit <<= 1) {
		struct policy_decision d;
		policy_decide(p, who, bit, path, strlen(path), &d);
		if (d.effect == POLICY_ALLOW)
			allowed |= bit;
	}
	return allowed;
}

static void reach_print_one(const struct conf_snapshot *cfg, const char *prefix, unsigned m)
{
	char methods[128];
	const struct policy_route *route = policy_route_lookup(cfg->policy, prefix, strlen(prefix));

	if (m == ALL_METHODS)
		snprintf(methods, sizeof(methods), "all methods");
	else
		policy_methods_format(m, methods, sizeof(methods));
	if (route)
		printf("%-12s %s  %s  (route %s -> cluster %s)\n", m ? "reach" : "denied", prefix,
		       m ? methods : "", route->prefix, cfg->clusters[route->cluster].name);
	else
		printf("%-12s %s  %s  (no route: 404)\n", m ? "reach" : "denied", prefix,
		       m ? methods : "");
}

/*
 * A decision only changes at prefixes that rules or routes name (policy_grants lists
 * them), so deciding for this certificate's full principal at each of them, every method,
 * describes its access completely. Denied prefixes are shown only below a reachable one.
 */
static int reach_print(const struct conf_snapshot *cfg, const struct authn_cert_id *id)
{
	struct authn_principal who = {.cert = id};
	struct reach *r = calloc(1, sizeof(*r));
	unsigned *m = NULL;
	int rc = -1;

	if (!r)
		return -1;
	for (size_t i = 0; i < policy_n_routes(cfg->policy); i++)
		reach_add(r, policy_route_at(cfg->policy, i)->prefix);
	if (policy_grants(cfg->policy, reach_grant_cb, r) != 0 || r->oom ||
	    !(m = calloc(r->n + 1, sizeof(*m)))) {
		fprintf(stderr, "inspect: out of memory\n");
		goto fail;
	}
	qsort(r->v, r->n, sizeof(r->v[0]), reach_cmp);
	size_t shown = 0;
	for (size_t i = 0; i < r->n; i++) {
		m[i] = reach_methods(cfg->policy, &who, r->v[i]);
		bool under_reach = false;
		for (size_t j = 0; j < i && !m[i]; j++)
			under_reach |= m[j] && policy_prefix_covers(r->v[j], strlen(r->v[j]),
			                                            r->v[i], strlen(r->v[i]));
		if (m[i] || under_reach) {
			reach_print_one(cfg, r->v[i], m[i]);
			shown++;
		}
	}
	if (shown == 0)
		printf("%-12s (nothing: every request of this identity is denied)\n", "reach");
	rc = 0;
fail:
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i]);
	free(r);
	free(m);
	return rc;
}

static int cmd_inspect(int argc, char **argv)
{
	const char *conf = NULL, *file = NULL;
	struct authn_cert_id id = {0};
	struct conf_snapshot *cfg = NULL;
	X509 *x = NULL;
	char err[512], when[32];
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			conf = argv[++i];
		else if (argv[i][0] != '-' && !file)
			file = argv[i];
		else
			file = NULL, argc = 0;
	}
	if (!file) {
		pki_usage(stderr);
		return 2;
	}
	if (conf) {
		struct conf_diags d = {0};
		cfg = conf_load(conf, &d);
		conf_diags_print(&d, stderr);
		conf_diags_clear(&d);
		if (!cfg)
			return 1;
	}
	x = cert_load(file);
	if (!x)
		goto out;
	if (authn_cert_id_from_x509(&id, x, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: %s\n", file, err);
		goto out;
	}
	/* The identity as `gatewayctl inspect` prints it, then what only a CA operator asks. */
	if (ctl_inspect(file) != 0)
		goto out;
	date_text(id.not_after, when);
	printf("%-12s %s (%s)\n", "expires", when, id.not_after < time(NULL) ? "EXPIRED" : "valid");
	if (pki_check_client_leaf(x) != PKI_OK)
		printf("%-12s refused at the handshake: %s\n", "warning",
		       pki_reason_str(pki_check_client_leaf(x)));
	rc = cfg ? (reach_print(cfg, &id) == 0 ? 0 : 1) : 0;
out:
	X509_free(x);
	authn_cert_id_clear(&id);
	conf_snapshot_free(cfg);
	return rc;
}

/* argv[0] is "pki". */
int ctl_pki_main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int argc, char **argv);
	} cmds[] = {{"init", cmd_init}, {"issue", cmd_issue}, {"revoke", cmd_revoke},
	            {"crl", cmd_crl},   {"list", cmd_list},   {"inspect", cmd_inspect}};

	if (argc >= 2 && (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0)) {
		pki_usage(stdout);
		return 0;
	}
	for (size_t i = 0; argc >= 2 && i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[1], cmds[i].name) == 0)
			return cmds[i].fn(argc - 1, argv + 1);
	pki_usage(stderr);
	return 2;
}
