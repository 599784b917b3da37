/* test_http_util.c - the envelope's building blocks: the upload protocol and the clocks. Body
 * collection and the query count through a real listener are tested with the envelope
 * (test_http_envelope.c). */
#include <CUnit/CUnit.h>
#include <string.h>
#include <unistd.h>

#include "http_util.h"

static void test_collect_protocol(void)
{
    void *cls = NULL;
    qk_req *r = NULL;
    size_t sz = 0;
    /* first call: allocation only */
    CU_ASSERT_EQUAL_FATAL(qk_req_collect(&cls, 16, NULL, &sz, &r), QK_REQ_MORE);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_PTR_EQUAL(cls, r);
    CU_ASSERT_EQUAL(r->body_len, 0);
    CU_ASSERT_STRING_EQUAL(r->body, "");
    CU_ASSERT(r->t_start_ms > 0);
    sz = 5;
    CU_ASSERT_EQUAL(qk_req_collect(&cls, 16, "hello", &sz, &r), QK_REQ_MORE);
    CU_ASSERT_EQUAL(sz, 0); /* consumed */
    sz = 6;
    CU_ASSERT_EQUAL(qk_req_collect(&cls, 16, " world", &sz, &r), QK_REQ_MORE);
    CU_ASSERT_EQUAL(sz, 0);
    sz = 0;
    CU_ASSERT_EQUAL(qk_req_collect(&cls, 16, NULL, &sz, &r), QK_REQ_DONE);
    CU_ASSERT_EQUAL(r->body_len, 11);
    CU_ASSERT_STRING_EQUAL(r->body, "hello world");
    CU_ASSERT_FALSE(r->too_large);
    qk_req_completed(NULL, NULL, &cls, MHD_REQUEST_TERMINATED_COMPLETED_OK);
    CU_ASSERT_PTR_NULL(cls);
    qk_req_completed(NULL, NULL, &cls, MHD_REQUEST_TERMINATED_COMPLETED_OK); /* no-op */

    /* exceeding max_body sets too_large and keeps the bytes already accepted */
    sz = 0;
    CU_ASSERT_EQUAL_FATAL(qk_req_collect(&cls, 8, NULL, &sz, &r), QK_REQ_MORE);
    sz = 5;
    CU_ASSERT_EQUAL(qk_req_collect(&cls, 8, "hello", &sz, &r), QK_REQ_MORE);
    sz = 6;
    CU_ASSERT_EQUAL(qk_req_collect(&cls, 8, " world", &sz, &r), QK_REQ_MORE);
    CU_ASSERT_EQUAL(sz, 0);
    CU_ASSERT(r->too_large);
    sz = 1;
    CU_ASSERT_EQUAL(qk_req_collect(&cls, 8, "x", &sz, &r), QK_REQ_MORE);
    sz = 0;
    CU_ASSERT_EQUAL(qk_req_collect(&cls, 8, NULL, &sz, &r), QK_REQ_DONE);
    CU_ASSERT(r->too_large);
    CU_ASSERT_EQUAL(r->body_len, 5);
    CU_ASSERT_STRING_EQUAL(r->body, "hello");
    qk_req_completed(NULL, NULL, &cls, MHD_REQUEST_TERMINATED_COMPLETED_OK);

    /* growth across many chunks up to exactly max_body */
    enum { MAXB = 100000, CHUNK = 100 };
    char chunk[CHUNK];
    sz = 0;
    CU_ASSERT_EQUAL_FATAL(qk_req_collect(&cls, MAXB, NULL, &sz, &r), QK_REQ_MORE);
    for (int i = 0; i < MAXB / CHUNK; i++) {
        memset(chunk, 'a' + i % 26, sizeof chunk);
        sz = CHUNK;
        CU_ASSERT_EQUAL(qk_req_collect(&cls, MAXB, chunk, &sz, &r), QK_REQ_MORE);
    }
    CU_ASSERT_EQUAL(r->body_len, MAXB);
    CU_ASSERT_FALSE(r->too_large);
    CU_ASSERT_EQUAL(strlen(r->body), MAXB);
    int same = 1;
    for (int i = 0; i < MAXB; i++)
        if (r->body[i] != 'a' + (i / CHUNK) % 26)
            same = 0;
    CU_ASSERT(same);
    sz = 1;
    CU_ASSERT_EQUAL(qk_req_collect(&cls, MAXB, "z", &sz, &r), QK_REQ_MORE);
    CU_ASSERT(r->too_large);
    qk_req_completed(NULL, NULL, &cls, MHD_REQUEST_TERMINATED_COMPLETED_OK);

    CU_ASSERT_EQUAL(qk_req_collect(NULL, 8, NULL, &sz, &r), QK_REQ_ERROR);
}

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
    if (!CU_add_test(s, "upload protocol", test_collect_protocol) ||
        !CU_add_test(s, "clocks", test_clocks))
        return -1;
    return 0;
}
