/* conf: address parsing and the diagnostics list (no files, no certificates). */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "cu.h"

static const struct {
	const char *in;
	int family; /* 0 = must be refused */
	unsigned port;
} addr_cases[] = {
    {"127.0.0.1:8443", AF_INET, 8443},
    {"0.0.0.0:0", AF_INET, 0},
    {"10.1.2.3:65535", AF_INET, 65535},
    {"[::1]:443", AF_INET6, 443},
    {"[::]:1", AF_INET6, 1},
    {"[2001:db8::1]:80", AF_INET6, 80},
    {"[::ffff:127.0.0.1]:80", AF_INET6, 80},
    {"127.0.0.1:65536", 0, 0},
    {"127.0.0.1:99999", 0, 0},
    {"127.0.0.1:", 0, 0},
    {"127.0.0.1", 0, 0},
    {":8443", 0, 0},
    {"127.0.0.1:-1", 0, 0},
    {"127.0.0.1:+80", 0, 0},
    {"127.0.0.1: 80", 0, 0},
    {"127.0.0.1:80x", 0, 0},
    {"127.0.0.1:000080", 0, 0},
    {"localhost:8443", 0, 0},
    {"example.org:443", 0, 0},
    {"256.0.0.1:80", 0, 0},
    {"::1:443", 0, 0},
    {"[::1]443", 0, 0},
    {"[::1]:", 0, 0},
    {"[::1:443", 0, 0},
    {"[127.0.0.1]:80", 0, 0},
    {"[]:80", 0, 0},
    {"[fe80::1%eth0]:80", 0, 0},
    {"", 0, 0},
};

static void test_parse_address(void)
{
	for (size_t i = 0; i < sizeof(addr_cases) / sizeof(addr_cases[0]); i++) {
		struct sockaddr_storage ss;
		socklen_t len = 0;
		int rc = conf_parse_address(addr_cases[i].in, &ss, &len);
		if ((rc == 0) != (addr_cases[i].family != 0))
			fprintf(stderr, "address case '%s': rc %d\n", addr_cases[i].in, rc);
		if (!addr_cases[i].family) {
			CU_ASSERT_EQUAL(rc, -1);
			continue;
		}
		CU_ASSERT_EQUAL_FATAL(rc, 0);
		CU_ASSERT_EQUAL(ss.ss_family, addr_cases[i].family);
		if (ss.ss_family == AF_INET) {
			const struct sockaddr_in *a = (const void *)&ss;
			CU_ASSERT_EQUAL(len, sizeof(*a));
			CU_ASSERT_EQUAL(ntohs(a->sin_port), addr_cases[i].port);
		} else {
			const struct sockaddr_in6 *a = (const void *)&ss;
			CU_ASSERT_EQUAL(len, sizeof(*a));
			CU_ASSERT_EQUAL(ntohs(a->sin6_port), addr_cases[i].port);
		}
	}
}

static void test_parse_address_value(void)
{
	struct sockaddr_storage ss;
	socklen_t len;
	struct in6_addr loop6 = IN6ADDR_LOOPBACK_INIT;

	CU_ASSERT_EQUAL_FATAL(conf_parse_address("127.0.0.1:1", &ss, &len), 0);
	CU_ASSERT_EQUAL(((struct sockaddr_in *)&ss)->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
	CU_ASSERT_EQUAL_FATAL(conf_parse_address("[::1]:1", &ss, &len), 0);
	CU_ASSERT_EQUAL(memcmp(&((struct sockaddr_in6 *)&ss)->sin6_addr, &loop6, sizeof(loop6)), 0);
	CU_ASSERT_EQUAL(conf_parse_address(NULL, &ss, &len), -1);
	CU_ASSERT_EQUAL(conf_parse_address("127.0.0.1:1", NULL, &len), -1);
}

/* Everything conf_diags_print writes, as one string (caller frees). */
static char *diags_text(const struct conf_diags *d)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	conf_diags_print(d, f);
	fclose(f);
	return buf;
}

static void test_diags_format(void)
{
	struct conf_diags d = {0};

	conf_diags_add(&d, true, "gw.conf", 12, "unknown key '%s'", "x");
	conf_diags_add(&d, false, "gw.conf", 3, "TLS verification of cluster %s is disabled", "c");
	conf_diags_add(&d, true, "gw.conf", 0, "cannot open: %s", "No such file or directory");
	conf_diags_add(&d, true, NULL, 7, "value 'a\nb\tc'");
	CU_ASSERT_EQUAL(d.n, 4);
	CU_ASSERT_EQUAL(d.n_errors, 3);
	CU_ASSERT_FALSE(d.v[1].is_error);
	char *text = diags_text(&d);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	CU_ASSERT_STRING_EQUAL(text,
	                       "gw.conf:12: unknown key 'x'\n"
	                       "gw.conf:3: warning: TLS verification of cluster c is disabled\n"
	                       "gw.conf: cannot open: No such file or directory\n"
	                       "(config):7: value 'a?b?c'\n");
	free(text);
	conf_diags_clear(&d);
	CU_ASSERT_EQUAL(d.n, 0);
	CU_ASSERT_EQUAL(d.n_errors, 0);
	CU_ASSERT_PTR_NULL(d.v);
	conf_diags_clear(&d);
	conf_diags_clear(NULL);
	conf_diags_add(NULL, true, "x", 1, "ignored");
	conf_snapshot_free(NULL);
}

static void test_listeners_equal_null(void)
{
	CU_ASSERT_TRUE(conf_listeners_equal(NULL, NULL));
	struct conf_snapshot s = {0};
	CU_ASSERT_FALSE(conf_listeners_equal(&s, NULL));
	CU_ASSERT_TRUE(conf_listeners_equal(&s, &s));
}

CU_SUITE(conf_addr, NULL, NULL, {"parse_address", test_parse_address},
         {"parse_address_value", test_parse_address_value}, {"diags_format", test_diags_format},
         {"listeners_equal_null", test_listeners_equal_null})
