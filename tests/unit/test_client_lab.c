/* test_client_lab.c - libqkdclient: the qkd-lab manifest parser (DIR/lab.json). */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qkdclient.h"

static const char lab_ok[] =
    "{\"version\":1,\"dir\":\"/tmp/lab\",\"ca_cert\":\"/tmp/lab/pki/ca.crt\","
    "\"kmes\":["
    "{\"id\":\"KME_A\",\"etsi014_url\":\"https://127.0.0.1:9001\","
    "\"skip_url\":\"https://127.0.0.1:9002\",\"admin_url\":\"http://127.0.0.1:9003\","
    "\"device_url\":null,\"pid\":123,"
    "\"saes\":[{\"id\":\"SAE_A1\",\"cert\":\"/tmp/lab/pki/sae-SAE_A1.crt\","
    "\"key\":\"/tmp/lab/pki/sae-SAE_A1.key\"}],"
    "\"skip_clients\":[{\"identity\":\"enc-a\",\"psk_hex\":\"00112233445566778899AABBCCDDEEFF\"}]},"
    "{\"id\":\"KME_B\",\"etsi014_url\":\"https://127.0.0.1:9011\",\"skip_url\":null,"
    "\"admin_url\":null,\"saes\":[],\"skip_clients\":[]}],"
    "\"links\":[{\"id\":\"KME_A~KME_B\",\"kmes\":[\"KME_A\",\"KME_B\"],\"preset\":\"x\"}],"
    "\"sim_url\":\"http://127.0.0.1:9100\",\"sim_pid\":7}";

static void test_lab_good(void)
{
    qkc_lab lab;
    qkc_error e = {0};
    CU_ASSERT_EQUAL_FATAL(qkc_lab_parse(lab_ok, strlen(lab_ok), &lab, &e), 0);
    CU_ASSERT_STRING_EQUAL(lab.ca_cert, "/tmp/lab/pki/ca.crt");
    CU_ASSERT_STRING_EQUAL(lab.sim_url, "http://127.0.0.1:9100");
    CU_ASSERT_EQUAL_FATAL(lab.n_kmes, 2);
    const qkc_lab_kme *a = qkc_lab_find_kme(&lab, "KME_A");
    const qkc_lab_kme *b = qkc_lab_find_kme(&lab, "KME_B");
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_PTR_NULL(qkc_lab_find_kme(&lab, "KME_C"));
    CU_ASSERT_STRING_EQUAL(a->etsi014_url, "https://127.0.0.1:9001");
    CU_ASSERT_STRING_EQUAL(a->skip_url, "https://127.0.0.1:9002");
    CU_ASSERT_STRING_EQUAL(a->admin_url, "http://127.0.0.1:9003");
    CU_ASSERT_PTR_NULL(b->skip_url);
    CU_ASSERT_PTR_NULL(b->admin_url);
    const qkc_lab_sae *s = qkc_lab_find_sae(a, "SAE_A1");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_STRING_EQUAL(s->cert, "/tmp/lab/pki/sae-SAE_A1.crt");
    CU_ASSERT_STRING_EQUAL(s->key, "/tmp/lab/pki/sae-SAE_A1.key");
    CU_ASSERT_PTR_NULL(qkc_lab_find_sae(b, "SAE_A1"));
    const qkc_lab_skip_client *sc = qkc_lab_find_skip_client(a, "enc-a");
    CU_ASSERT_PTR_NOT_NULL_FATAL(sc);
    CU_ASSERT_EQUAL(sc->psk_len, 16);
    CU_ASSERT_EQUAL(sc->psk[0], 0x00);
    CU_ASSERT_EQUAL(sc->psk[15], 0xff);
    CU_ASSERT_EQUAL_FATAL(lab.n_links, 1);
    CU_ASSERT_STRING_EQUAL(lab.links[0].id, "KME_A~KME_B");
    CU_ASSERT_STRING_EQUAL(lab.links[0].kmes[1], "KME_B");
    qkc_lab_free(&lab);
    CU_ASSERT_PTR_NULL(lab.kmes);
}

/* lab_ok with `from` replaced by `to` must be refused. */
static void expect_lab_bad(const char *from, const char *to)
{
    char body[4096];
    const char *p = strstr(lab_ok, from);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    snprintf(body, sizeof body, "%.*s%s%s", (int)(p - lab_ok), lab_ok, to, p + strlen(from));
    qkc_lab lab;
    qkc_error e = {0};
    int rc = qkc_lab_parse(body, strlen(body), &lab, &e);
    CU_ASSERT_EQUAL(rc, QKC_EMALFORMED);
    CU_ASSERT(strstr(e.msg, "lab.json") != NULL);
    if (rc == 0)
        qkc_lab_free(&lab);
}

static void test_lab_bad(void)
{
    expect_lab_bad("\"ca_cert\":\"/tmp/lab/pki/ca.crt\",", "");
    expect_lab_bad("\"ca_cert\":\"/tmp/lab/pki/ca.crt\"", "\"ca_cert\":5");
    expect_lab_bad("\"kmes\":[", "\"kmez\":[");
    expect_lab_bad("{\"id\":\"KME_A\",", "{");
    expect_lab_bad("\"etsi014_url\":\"https://127.0.0.1:9001\"", "\"etsi014_url\":[]");
    expect_lab_bad("\"saes\":[{\"id\":\"SAE_A1\",", "\"saes\":[{");
    expect_lab_bad("\"key\":\"/tmp/lab/pki/sae-SAE_A1.key\"", "\"key\":null");
    expect_lab_bad("\"saes\":[]", "\"saes\":{}");
    expect_lab_bad("00112233445566778899AABBCCDDEEFF", "0011223");    /* odd */
    expect_lab_bad("00112233445566778899AABBCCDDEEFF", "00112233zz"); /* not hex */
    expect_lab_bad("\"psk_hex\":\"00112233445566778899AABBCCDDEEFF\"", "\"psk\":\"00\"");
    expect_lab_bad("\"kmes\":[\"KME_A\",\"KME_B\"]", "\"kmes\":[\"KME_A\"]");
    expect_lab_bad("\"kmes\":[\"KME_A\",\"KME_B\"]", "\"kmes\":[\"KME_A\",2]");
    expect_lab_bad("{\"id\":\"KME_B\"", "{\"id\":\"KME_A\""); /* KME listed twice */
    expect_lab_bad("\"sim_url\":\"http://127.0.0.1:9100\"", "\"sim_url\":true");
    expect_lab_bad("\"/tmp/lab/pki/ca.crt\"", "\"/tmp/\\u0001\"");

    qkc_lab lab;
    qkc_error e;
    CU_ASSERT_EQUAL(qkc_lab_parse("[]", 2, &lab, &e), QKC_EMALFORMED);
    CU_ASSERT_EQUAL(qkc_lab_parse("{", 1, &lab, &e), QKC_EMALFORMED);
    size_t big = 1024 * 1024 + 1;
    char *text = malloc(big);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    memset(text, ' ', big);
    CU_ASSERT_EQUAL(qkc_lab_parse(text, big, &lab, &e), QKC_EMALFORMED);
    free(text);
}

static void test_lab_load(void)
{
    char dir[] = "/tmp/qkc-lab-XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    qkc_lab lab;
    qkc_error e;
    CU_ASSERT_EQUAL(qkc_lab_load(dir, &lab, &e), QKC_EUSAGE); /* no lab.json */
    char path[64];
    snprintf(path, sizeof path, "%s/lab.json", dir);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(lab_ok, f);
    fclose(f);
    CU_ASSERT_EQUAL(qkc_lab_load(dir, &lab, &e), 0);
    CU_ASSERT_EQUAL(lab.n_kmes, 2);
    qkc_lab_free(&lab);
    unlink(path);
    rmdir(dir);
}

int suite_client_lab(void)
{
    CU_pSuite s = CU_add_suite("client_lab", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "lab.json: good manifest", test_lab_good) ||
        !CU_add_test(s, "lab.json: malformed manifests", test_lab_bad) ||
        !CU_add_test(s, "lab.json: load from a directory", test_lab_load))
        return -1;
    return 0;
}
