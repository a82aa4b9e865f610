/*
 * gatewayctl: the operator's tool. It links the pure modules (conf, policy, authn, pki)
 * and no event loop, so every answer it gives is computed by the same code the daemon
 * uses: `check` is `gatewayd -t`, `inspect` derives an identity exactly as a handshake
 * would, `decide` runs the policy on it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>

#include "authn.h"
#include "conf.h"
#include "policy.h"

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage:\n"
	    "  gatewayctl check -c FILE            validate a configuration (as gatewayd -t)\n"
	    "  gatewayctl inspect CERT.pem         print the identity the gateway derives\n"
	    "  gatewayctl decide -c FILE --cert CERT.pem --method M --path P\n"
	    "                                      normalise P and decide it for that "
	    "certificate\n"
	    "  gatewayctl audit keygen|verify|query ...   the audit log (gatewayctl audit help)\n"
	    "  gatewayctl pki init|issue|revoke|crl|list|inspect ...   a private CA (pki help)\n"
	    "  gatewayctl policy check|explain|diff|grants ...   the policy (policy help)\n");
}

static int cmd_check(const char *path)
{
	struct conf_diags d = {0};
	struct conf_snapshot *cfg = conf_load(path, &d);
	conf_diags_print(&d, stderr);
	size_t errors = d.n_errors;
	conf_diags_clear(&d);
	conf_snapshot_free(cfg);
	if (!cfg || errors) {
		fprintf(stderr, "%s: configuration has %zu error(s)\n", path, errors);
		return 1;
	}
	printf("%s: configuration OK\n", path);
	return 0;
}

static X509 *read_cert(const char *file)
{
	FILE *f = fopen(file, "r");
	if (!f) {
		perror(file);
		return NULL;
	}
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!x)
		fprintf(stderr, "%s: not a PEM certificate\n", file);
	return x;
}

static int load_identity(const char *file, struct authn_cert_id *id)
{
	char err[256];
	X509 *x = read_cert(file);
	if (!x)
		return -1;
	int rc = authn_cert_id_from_x509(id, x, err, sizeof(err));
	X509_free(x);
	if (rc != 0)
		fprintf(stderr, "%s: %s\n", file, err);
	return rc;
}

static void print_list(const char *label, char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		printf("%-12s %s\n", label, v[i]);
}

/* Also the identity part of `gatewayctl pki inspect` (ctl_pki.c). */
int ctl_inspect(const char *file)
{
	struct authn_cert_id id = {0};
	if (load_identity(file, &id) != 0)
		return 1;
	const char *name = authn_cert_id_name(&id);
	printf("%-12s %s\n", "identity", name ? name : "(none)");
	printf("%-12s %s\n", "spiffe_id",
	       id.spiffe_id ? id.spiffe_id : "(none: not a valid X509-SVID)");
	printf("%-12s %s\n", "cn", id.cn ? id.cn : "(none)");
	printf("%-12s %s\n", "subject", id.subject ? id.subject : "");
	printf("%-12s %s\n", "issuer", id.issuer ? id.issuer : "");
	printf("%-12s %s\n", "serial", id.serial_hex ? id.serial_hex : "");
	printf("%-12s %s\n", "sha256", id.sha256_hex);
	print_list("san_dns", id.san_dns, id.n_dns);
	print_list("san_uri", id.san_uri, id.n_uri);
	print_list("san_email", id.san_email, id.n_email);
	printf("%-12s %lld\n", "not_after", (long long)id.not_after);
	authn_cert_id_clear(&id);
	return 0;
}

static int cmd_decide(const char *conf, const char *cert, const char *method, const char *path)
{
	struct conf_diags d = {0};
	struct conf_snapshot *cfg = conf_load(conf, &d);
	conf_diags_print(&d, stderr);
	conf_diags_clear(&d);
	if (!cfg)
		return 1;
	struct authn_cert_id id = {0};
	int rc = 1;
	if (load_identity(cert, &id) != 0)
		goto out;
	char norm[8192];
	size_t nlen;
	enum policy_path_status ps =
	    policy_path_normalize(path, strlen(path), norm, sizeof(norm), &nlen);
	if (ps != POLICY_PATH_OK) {
		printf("path      %s\nresult    400 (%s)\n", path, policy_path_status_str(ps));
		rc = 0;
		goto out;
	}
	printf("path      %s\n", norm);
	const struct policy_route *route = policy_route_lookup(cfg->policy, norm, nlen);
	if (!route) {
		printf("result    404 (no route)\n");
		rc = 0;
		goto out;
	}
	printf("route     %s (%s:%d) -> cluster %s\n", route->prefix, route->file, route->line,
	       cfg->clusters[route->cluster].name);
	struct authn_principal who = {.cert = &id};
	struct policy_decision dec;
	policy_decide(cfg->policy, &who, policy_method_bit(method, strlen(method)), norm, nlen,
	              &dec);
	int line = 0;
	const char *file = policy_rule_file(dec.rule, &line);
	printf("decision  %s\n", dec.effect == POLICY_ALLOW ? "allow" : "deny");
	if (file)
		printf("rule      %s:%d\n", file, line);
	else
		printf("rule      (none: default deny)\n");
	rc = 0;
out:
	authn_cert_id_clear(&id);
	conf_snapshot_free(cfg);
	return rc;
}

int ctl_audit_main(int argc, char **argv);  /* ctl_audit.c: `gatewayctl audit ...` */
int ctl_pki_main(int argc, char **argv);    /* ctl_pki.c: `gatewayctl pki ...` */
int ctl_apikey_main(int argc, char **argv); /* ctl_apikey.c: `gatewayctl apikey ...` */
int ctl_policy_main(int argc, char **argv); /* ctl_policy.c: `gatewayctl policy ...` */

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "audit") == 0)
		return ctl_audit_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "pki") == 0)
		return ctl_pki_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "apikey") == 0)
		return ctl_apikey_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "policy") == 0)
		return ctl_policy_main(argc - 1, argv + 1);
	const char *conf = NULL, *cert = NULL, *method = "GET", *path = NULL;
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			conf = argv[++i];
		else if (strcmp(argv[i], "--cert") == 0 && i + 1 < argc)
			cert = argv[++i];
		else if (strcmp(argv[i], "--method") == 0 && i + 1 < argc)
			method = argv[++i];
		else if (strcmp(argv[i], "--path") == 0 && i + 1 < argc)
			path = argv[++i];
		else if (argv[i][0] != '-' && !cert)
			cert = argv[i];
		else {
			usage(stderr);
			return 2;
		}
	}
	if (strcmp(argv[1], "check") == 0 && conf)
		return cmd_check(conf);
	if (strcmp(argv[1], "inspect") == 0 && cert)
		return ctl_inspect(cert);
	if (strcmp(argv[1], "decide") == 0 && conf && cert && path)
		return cmd_decide(conf, cert, method, path);
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	usage(stderr);
	return 2;
}
