/* The checks of the C API tests: a failed check prints where, what and the library's last
 * error message, and counts into `failures` (the test's exit status). */
#ifndef MEMFLOW_TEST_CHECK_H
#define MEMFLOW_TEST_CHECK_H

#include "memflow.h"

#include <stdio.h>

static int failures = 0;

#define CHECK(cond)                                                                         \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", __FILE__, __LINE__, \
                    #cond, mf_last_error_message());                                        \
            failures++;                                                                     \
        }                                                                                   \
    } while (0)

#define OK(call) CHECK((call) == MF_OK)

#endif
