/* test_http_util.c - the clocks of the HTTP layers. Body collection and the query helpers
 * through a real listener are tested with the envelope (test_http_envelope.c). */
#include <CUnit/CUnit.h>
#include <string.h>
#include <unistd.h>

#include "http_util.h"

static void test_clocks(void)
{
    double a = qk_now_ms();
    usleep(20000);
    double b = qk_now_ms();
    CU_ASSERT(b - a >= 15.0);
    CU_ASSERT(b - a < 5000.0);
    CU_ASSERT(qk_now_s() > 1600000000ULL);
}

int suite_http_util(void)
{
    CU_pSuite s = CU_add_suite("http_util", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "clocks", test_clocks))
        return -1;
    return 0;
}
