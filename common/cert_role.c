/* cert_role.c - role words, the SAN URI role marker and the one role check of every listener
 * (cert_role.h; docs/qkd-kmed.md "Roles"). */
#include "cert_role.h"

#include <string.h>
#include <strings.h>

static const char *const role_names[] = {
    [QK_ROLE_NONE] = "none",     [QK_ROLE_SAE] = "sae",       [QK_ROLE_KME] = "kme",
    [QK_ROLE_DEVICE] = "device", [QK_ROLE_BRIDGE] = "bridge", [QK_ROLE_INVALID] = "invalid",
};

const char *qk_role_name(qk_role r)
{
    return (unsigned)r <= QK_ROLE_INVALID ? role_names[r] : "invalid";
}

qk_role qk_role_parse(const char *word, size_t len)
{
    for (int r = QK_ROLE_SAE; r <= QK_ROLE_BRIDGE; r++)
        if (strlen(role_names[r]) == len && memcmp(role_names[r], word, len) == 0)
            return (qk_role)r;
    return QK_ROLE_INVALID;
}

const char *qk_role_marker_name(qk_role_marker m)
{
    return m == QK_ROLE_MARKER_OPTIONAL ? "optional" : "required";
}

int qk_role_marker_parse(const char *s, qk_role_marker *out)
{
    if (strcmp(s, "required") == 0)
        *out = QK_ROLE_MARKER_REQUIRED;
    else if (strcmp(s, "optional") == 0)
        *out = QK_ROLE_MARKER_OPTIONAL;
    else
        return -1;
    return 0;
}

qk_role qk_role_fold_uri(qk_role so_far, const char *uri, size_t len)
{
    size_t pl = strlen(QK_ROLE_URI_PREFIX);
    /* URNs compare their "urn" and NID parts case-insensitively (RFC 8141 section 3.1); the
     * role word itself is matched exactly. */
    if (len < pl || strncasecmp(uri, QK_ROLE_URI_PREFIX, pl) != 0)
        return so_far;
    qk_role r = qk_role_parse(uri + pl, len - pl);
    if (so_far == QK_ROLE_NONE || so_far == r)
        return r;
    return QK_ROLE_INVALID;
}

bool qk_role_allows(bool is_cert, qk_role marker, qk_role want, qk_role_marker m, const char **why)
{
    static const char *const none = "";
    *why = none;
    if (!is_cert)
        return true;
    if (marker == want)
        return true;
    if (marker == QK_ROLE_INVALID) {
        *why = "the certificate's role marker is invalid (unknown role, or more than one)";
        return false;
    }
    if (marker != QK_ROLE_NONE) {
        *why = "the certificate is marked for another role";
        return false;
    }
    if (m == QK_ROLE_MARKER_OPTIONAL)
        return true;
    *why = "the certificate carries no role marker for this listener";
    return false;
}
