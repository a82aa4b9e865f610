/*
 * Tiny registration layer over CUnit: each test file declares its suite with CU_SUITE and
 * the shared runner (cu_main.c) registers them all. The runner exits non-zero when any
 * test or suite failed, or when no test ran at all, so ctest goes red on a failing assert
 * (CU_basic_run_tests() alone only reports framework errors).
 */
#ifndef CU_H
#define CU_H

#include <stddef.h>
#include <CUnit/CUnit.h>

struct cu_test {
	const char *name;
	void (*fn)(void);
};

void cu_register(const char *suite, const struct cu_test *tests, size_t n, int (*init)(void),
                 int (*clean)(void));

/* CU_SUITE(name, init, clean, {"t1", fn1}, {"t2", fn2}) */
#define CU_SUITE(sname, init, clean, ...)                                                          \
	static const struct cu_test cu_tests_##sname[] = {__VA_ARGS__};                            \
	__attribute__((constructor)) static void cu_reg_##sname(void)                              \
	{                                                                                          \
		cu_register(#sname, cu_tests_##sname,                                              \
		            sizeof(cu_tests_##sname) / sizeof(cu_tests_##sname[0]), init, clean);  \
	}

/* Directory of static test data (tests/data), from the environment ctest sets. */
const char *cu_data_dir(void);
/* Directory of the shared test vectors (../shared/testdata), or NULL when absent. */
const char *cu_shared_dir(void);

#endif
