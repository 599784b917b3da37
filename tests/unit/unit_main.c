/* unit_main.c - the CUnit runner for every unit suite. Each tests/unit/test_NAME.c defines
 * `int suite_NAME(void)` that adds its suite to the registry (0 on success); the Makefile
 * generates suites.h listing them. Usage: unit-tests [SUITE...] runs all or the named ones; an
 * unknown SUITE is a usage error (exit 2, nothing runs). The last line printed is
 * "unit-tests: N passed, N failed" (tests; a suite whose setup fails counts as one failure), which
 * tests/run-all reads. Exit 0 when nothing failed, 1 on a failure, 2 on a usage or setup error. */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <string.h>

#include "secbuf.h"

#define X(name) int suite_##name(void);
#include "suites.h"
#undef X

struct suite_entry {
    const char *name;
    int (*add)(void);
};

static const struct suite_entry suites[] = {
#define X(name) {#name, suite_##name},
#include "suites.h"
#undef X
    {NULL, NULL},
};

static int known_suite(const char *name)
{
    for (size_t i = 0; suites[i].name; i++)
        if (strcmp(name, suites[i].name) == 0)
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    int unknown = 0;
    for (int a = 1; a < argc; a++)
        if (!known_suite(argv[a])) {
            fprintf(stderr, "unit-tests: unknown suite '%s'\n", argv[a]);
            unknown = 1;
        }
    if (unknown) {
        fprintf(stderr, "known suites:");
        for (size_t i = 0; suites[i].name; i++)
            fprintf(stderr, " %s", suites[i].name);
        fprintf(stderr, "\n");
        return 2;
    }
    if (qk_secure_init() != 0) {
        fprintf(stderr, "libsodium init failed\n");
        return 2;
    }
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    for (size_t i = 0; suites[i].name; i++) {
        int wanted = argc < 2;
        for (int a = 1; a < argc; a++)
            if (strcmp(argv[a], suites[i].name) == 0)
                wanted = 1;
        if (wanted && suites[i].add() != 0) {
            fprintf(stderr, "cannot register suite %s: %s\n", suites[i].name, CU_get_error_msg());
            CU_cleanup_registry();
            return 2;
        }
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned run = CU_get_number_of_tests_run();
    unsigned tests_failed = CU_get_number_of_tests_failed();
    unsigned suites_failed = CU_get_number_of_suites_failed();
    unsigned failed = CU_get_number_of_failures() + tests_failed + suites_failed;
    CU_cleanup_registry();
    printf("unit-tests: %u passed, %u failed\n", run - tests_failed, tests_failed + suites_failed);
    return failed ? 1 : 0;
}
