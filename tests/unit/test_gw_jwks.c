/*
 * The pure part of the JWKS fetcher (gateway/jwks_fetch.c): which issuer a token with an
 * unknown kid names, so the worker asks for the refetch of that issuer's source only.
 */
#include <string.h>

#include "cu.h"
#include "gw.h"

#define HDR "eyJhbGciOiJFUzI1NiIsImtpZCI6IngifQ" /* {"alg":"ES256","kid":"x"} */

static const struct {
	const char *token;
	int rc;
	const char *iss;
} cases[] = {
    /* {"iss":"https://idp.test","exp":1} */
    {HDR ".eyJpc3MiOiJodHRwczovL2lkcC50ZXN0IiwiZXhwIjoxfQ.c2ln", 0, "https://idp.test"},
    {HDR ".eyJpc3MiOiIifQ.c2ln", 0, ""},                  /* {"iss":""} */
    {HDR ".eyJzdWIiOiJhIn0.c2ln", -1, NULL},              /* {"sub":"a"}: no iss */
    {HDR ".eyJpc3MiOjd9.c2ln", -1, NULL},                 /* {"iss":7} */
    {HDR ".eyJpc3MiOiJhXHUwMDAwYiJ9.c2ln", -1, NULL},     /* an iss with a NUL */
    {HDR ".WzFd.c2ln", -1, NULL},                         /* [1] */
    {HDR ".eyJpc3MiOiJhIiwiaXNzIjoiYiJ9.c2ln", -1, NULL}, /* iss twice */
    {HDR ".eyJpc3MiOiIifQ", -1, NULL},                    /* one dot */
    {HDR "..c2ln", -1, NULL},                             /* empty payload */
    {HDR ".eyJpc3MiOiIi+Q.c2ln", -1, NULL},               /* not base64url */
    {"", -1, NULL},
};

static void test_token_iss(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char iss[64] = "unchanged";
		int rc =
		    gw_jwks_token_iss(cases[i].token, strlen(cases[i].token), iss, sizeof(iss));
		CU_ASSERT_EQUAL(rc, cases[i].rc);
		if (rc == 0 && cases[i].rc == 0)
			CU_ASSERT_STRING_EQUAL(iss, cases[i].iss);
	}
	/* An iss that does not fit is refused, not cut. */
	char small[8];
	CU_ASSERT_EQUAL(
	    gw_jwks_token_iss(cases[0].token, strlen(cases[0].token), small, sizeof(small)), -1);
	/* Only the given length is read. */
	char iss[64];
	CU_ASSERT_EQUAL(gw_jwks_token_iss(cases[0].token, strlen(HDR) + 5, iss, sizeof(iss)), -1);
	/* No fetcher (gatewayctl, tests): asking for a refetch is a no-op. */
	gw_jwks_unknown_kid(NULL, cases[0].token, strlen(cases[0].token));
}

CU_SUITE(gw_jwks, NULL, NULL, {"token_iss", test_token_iss})
