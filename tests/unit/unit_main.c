/* unit_main.c - the CUnit runner for every unit suite. Each tests/unit/test_NAME.c defines
 * `int suite_NAME(void)` that adds its suite to the registry (0 on success); the Makefile
 * generates suites.h listing them. Usage: unit-tests [SUITE...] runs all or the named ones. */
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

int main(int argc, char **argv)
{
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
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed() +
                      CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
