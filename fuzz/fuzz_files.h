/* fuzz_files.h: shared set-up of the configuration fuzzers (see fuzz_files.c). */
#ifndef FUZZ_FILES_H
#define FUZZ_FILES_H

#include <stdio.h>

/* Enters $GW_FUZZ_PKI when set; 0, or -1 when it cannot. */
int fuzz_files_init(void);

#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond))                                                                       \
			__builtin_trap();                                                          \
	} while (0)

#endif
