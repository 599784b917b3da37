/* test_cert_role.c - the role words, the SAN URI role marker and the one role check every
 * listener makes (common/cert_role.h, docs/qkd-kmed.md "Roles"). The marker read from real
 * certificates over real TLS: tests/integration/roles.sh. */
#include <CUnit/CUnit.h>
#include <string.h>

#include "cert_role.h"

static qk_role fold(qk_role so_far, const char *uri)
{
    return qk_role_fold_uri(so_far, uri, strlen(uri));
}

static void test_names(void)
{
    static const qk_role roles[] = {QK_ROLE_SAE, QK_ROLE_KME, QK_ROLE_DEVICE, QK_ROLE_BRIDGE};
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
        const char *n = qk_role_name(roles[i]);
        CU_ASSERT_EQUAL(qk_role_parse(n, strlen(n)), roles[i]);
    }
    CU_ASSERT_STRING_EQUAL(qk_role_name(QK_ROLE_SAE), "sae");
    CU_ASSERT_STRING_EQUAL(qk_role_name(QK_ROLE_KME), "kme");
    CU_ASSERT_STRING_EQUAL(qk_role_name(QK_ROLE_DEVICE), "device");
    CU_ASSERT_STRING_EQUAL(qk_role_name(QK_ROLE_BRIDGE), "bridge");
    CU_ASSERT_STRING_EQUAL(qk_role_name(QK_ROLE_NONE), "none");
    CU_ASSERT_STRING_EQUAL(qk_role_name((qk_role)99), "invalid");
    /* Exact words only: no case folding, no prefix, no "none". */
    CU_ASSERT_EQUAL(qk_role_parse("SAE", 3), QK_ROLE_INVALID);
    CU_ASSERT_EQUAL(qk_role_parse("sa", 2), QK_ROLE_INVALID);
    CU_ASSERT_EQUAL(qk_role_parse("saex", 4), QK_ROLE_INVALID);
    CU_ASSERT_EQUAL(qk_role_parse("none", 4), QK_ROLE_INVALID);
    CU_ASSERT_EQUAL(qk_role_parse("", 0), QK_ROLE_INVALID);
    qk_role_marker m = QK_ROLE_MARKER_OPTIONAL;
    CU_ASSERT_EQUAL(qk_role_marker_parse("required", &m), 0);
    CU_ASSERT_EQUAL(m, QK_ROLE_MARKER_REQUIRED);
    CU_ASSERT_EQUAL(qk_role_marker_parse("optional", &m), 0);
    CU_ASSERT_EQUAL(m, QK_ROLE_MARKER_OPTIONAL);
    CU_ASSERT_EQUAL(qk_role_marker_parse("yes", &m), -1);
    CU_ASSERT_STRING_EQUAL(qk_role_marker_name(QK_ROLE_MARKER_REQUIRED), "required");
    CU_ASSERT_STRING_EQUAL(qk_role_marker_name(QK_ROLE_MARKER_OPTIONAL), "optional");
}

static void test_fold(void)
{
    CU_ASSERT_EQUAL(fold(QK_ROLE_NONE, "urn:qkd-kms:role:sae"), QK_ROLE_SAE);
    CU_ASSERT_EQUAL(fold(QK_ROLE_NONE, "urn:qkd-kms:role:device"), QK_ROLE_DEVICE);
    /* RFC 8141 3.1: "urn" and the NID compare case-insensitively. */
    CU_ASSERT_EQUAL(fold(QK_ROLE_NONE, "URN:QKD-KMS:role:kme"), QK_ROLE_KME);
    /* Other URIs are not markers. */
    CU_ASSERT_EQUAL(fold(QK_ROLE_NONE, "https://example.net/sae"), QK_ROLE_NONE);
    CU_ASSERT_EQUAL(fold(QK_ROLE_NONE, "urn:qkd-kms:rol"), QK_ROLE_NONE);
    CU_ASSERT_EQUAL(fold(QK_ROLE_BRIDGE, "spiffe://x/y"), QK_ROLE_BRIDGE);
    /* The same marker twice is one role; two roles, or an unknown word, are invalid. */
    CU_ASSERT_EQUAL(fold(QK_ROLE_SAE, "urn:qkd-kms:role:sae"), QK_ROLE_SAE);
    CU_ASSERT_EQUAL(fold(QK_ROLE_SAE, "urn:qkd-kms:role:device"), QK_ROLE_INVALID);
    CU_ASSERT_EQUAL(fold(QK_ROLE_NONE, "urn:qkd-kms:role:admin"), QK_ROLE_INVALID);
    CU_ASSERT_EQUAL(fold(QK_ROLE_NONE, "urn:qkd-kms:role:"), QK_ROLE_INVALID);
    CU_ASSERT_EQUAL(fold(QK_ROLE_INVALID, "urn:qkd-kms:role:sae"), QK_ROLE_INVALID);
    /* A NUL inside the URI (an IA5String may carry one) is no role word. */
    static const char nul[] = "urn:qkd-kms:role:sae\0device";
    CU_ASSERT_EQUAL(qk_role_fold_uri(QK_ROLE_NONE, nul, sizeof nul - 1), QK_ROLE_INVALID);
}

/* Every pair: a certificate marked X at a listener of role Y is allowed only when X = Y. */
static void test_allows_pairs(void)
{
    static const qk_role roles[] = {QK_ROLE_SAE, QK_ROLE_KME, QK_ROLE_DEVICE, QK_ROLE_BRIDGE};
    const size_t n = sizeof roles / sizeof roles[0];
    for (size_t x = 0; x < n; x++) {
        for (size_t y = 0; y < n; y++) {
            for (int m = QK_ROLE_MARKER_REQUIRED; m <= QK_ROLE_MARKER_OPTIONAL; m++) {
                const char *why = NULL;
                bool ok = qk_role_allows(true, roles[x], roles[y], (qk_role_marker)m, &why);
                CU_ASSERT_EQUAL(ok, x == y);
                CU_ASSERT_PTR_NOT_NULL(why);
                if (!ok)
                    CU_ASSERT_PTR_NOT_NULL(strstr(why, "another role"));
            }
        }
    }
}

static void test_allows_unmarked(void)
{
    const char *why = NULL;
    /* No marker: the listener's policy decides. */
    CU_ASSERT_FALSE(
        qk_role_allows(true, QK_ROLE_NONE, QK_ROLE_DEVICE, QK_ROLE_MARKER_REQUIRED, &why));
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "no role marker"));
    CU_ASSERT_TRUE(qk_role_allows(true, QK_ROLE_NONE, QK_ROLE_SAE, QK_ROLE_MARKER_OPTIONAL, &why));
    CU_ASSERT_STRING_EQUAL(why, "");
    /* An invalid marker is refused everywhere, whatever the policy. */
    for (int m = QK_ROLE_MARKER_REQUIRED; m <= QK_ROLE_MARKER_OPTIONAL; m++) {
        CU_ASSERT_FALSE(
            qk_role_allows(true, QK_ROLE_INVALID, QK_ROLE_SAE, (qk_role_marker)m, &why));
        CU_ASSERT_PTR_NOT_NULL(strstr(why, "invalid"));
    }
    /* A PSK identity has no certificate: the listener's PSK file gives its role. */
    CU_ASSERT_TRUE(qk_role_allows(false, QK_ROLE_NONE, QK_ROLE_SAE, QK_ROLE_MARKER_REQUIRED, &why));
}

int suite_cert_role(void)
{
    CU_pSuite s = CU_add_suite("cert_role", NULL, NULL);
    if (!s)
        return -1;
    if (!CU_add_test(s, "role words and marker policies", test_names) ||
        !CU_add_test(s, "SAN URI markers folded", test_fold) ||
        !CU_add_test(s, "every pair of roles: only the listener's own", test_allows_pairs) ||
        !CU_add_test(s, "unmarked, invalid, PSK", test_allows_unmarked))
        return -1;
    return 0;
}
