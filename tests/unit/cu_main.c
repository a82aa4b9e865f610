/* Shared CUnit runner; see cu.h for why the exit status is computed here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <CUnit/Basic.h>

#include "cu.h"

#define CU_MAX_SUITES 64

struct cu_suite_reg {
	const char *name;
	const struct cu_test *tests;
	size_t n;
	int (*init)(void);
	int (*clean)(void);
};

static struct cu_suite_reg suites[CU_MAX_SUITES];
static size_t n_suites;

void cu_register(const char *suite, const struct cu_test *tests, size_t n, int (*init)(void),
                 int (*clean)(void))
{
	if (n_suites == CU_MAX_SUITES) {
		fprintf(stderr, "cu: too many suites\n");
		abort();
	}
	suites[n_suites++] = (struct cu_suite_reg){suite, tests, n, init, clean};
}

const char *cu_data_dir(void)
{
	const char *d = getenv("GW_TEST_DATA");
	return d ? d : "tests/data";
}

const char *cu_shared_dir(void)
{
	const char *d = getenv("GW_SHARED_TESTDATA");
	struct stat st;
	if (d && stat(d, &st) == 0 && S_ISDIR(st.st_mode))
		return d;
	return NULL;
}

int main(int argc, char **argv)
{
	const char *only = argc > 1 ? argv[1] : NULL;
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	for (size_t i = 0; i < n_suites; i++) {
		CU_pSuite s = CU_add_suite(suites[i].name, suites[i].init, suites[i].clean);
		if (!s)
			return 2;
		for (size_t j = 0; j < suites[i].n; j++) {
			if (only && strcmp(only, suites[i].tests[j].name) != 0)
				continue;
			if (!CU_add_test(s, suites[i].tests[j].name, suites[i].tests[j].fn))
				return 2;
		}
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	if (CU_basic_run_tests() != CUE_SUCCESS) {
		fprintf(stderr, "cu: framework error: %s\n", CU_get_error_msg());
		CU_cleanup_registry();
		return 2;
	}
	unsigned failed = CU_get_number_of_tests_failed() + CU_get_number_of_suites_failed();
	unsigned ran = CU_get_number_of_tests_run();
	unsigned asserts_failed = CU_get_number_of_failures();
	CU_cleanup_registry();
	if (ran == 0) {
		fprintf(stderr, "cu: no test ran\n");
		return 1;
	}
	return (failed || asserts_failed) ? 1 : 0;
}
