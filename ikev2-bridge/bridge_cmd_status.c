/* bridge_cmd_status.c - `qkd-bridge status (-c CONFIG | --admin URL) [--json]`: GET /status of
 * a running bridge, printed as text (key, SA, PPK confirmation, next rotation, last error,
 * counters) or as the admin listener's JSON. */
#include <stdio.h>
#include <string.h>

#include "bridge_cli.h"
#include "bridge_cmds.h"
#include "json_util.h"

int qkb_cmd_status(int argc, char **argv)
{
    qkb_cli_opts o;
    if (qkb_cli_parse_opts(argc, argv, &o) || (!o.conf && !o.admin)) {
        fprintf(stderr, "usage: qkd-bridge status (-c CONFIG | --admin URL) [--json]\n");
        return 2;
    }
    qk_http_response r = {0};
    int rc = qkb_cli_admin_call(&o, "GET", "/status", &r);
    if (rc)
        return rc;
    if (r.status != 200) {
        fprintf(stderr, "qkd-bridge: admin answered HTTP %ld\n", r.status);
        qk_http_response_free(&r);
        return 1;
    }
    if (o.json) {
        printf("%s\n", r.body);
        qk_http_response_free(&r);
        return 0;
    }
    qk_err e;
    cJSON *j = qk_json_parse(r.body, r.body_len, 1 << 16, &e);
    qk_http_response_free(&r);
    if (!j) {
        fprintf(stderr, "qkd-bridge: bad status: %s\n", e.msg);
        return 1;
    }
    const cJSON *sa = cJSON_GetObjectItemCaseSensitive(j, "sa");
    const cJSON *ppk = cJSON_GetObjectItemCaseSensitive(sa, "ppk_confirmed");
    const char *kid = qk_json_str_or(j, "key_id", NULL);
    const char *next = qk_json_str_or(j, "next_rotation", NULL);
    const char *err_at = qk_json_str_or(j, "last_error_at", NULL);
    const char *ref = qk_json_str_or(sa, "ref", "");
    printf("bridge:        %s (%s, driver %s)\n", qk_json_str_or(j, "name", "?"),
           qk_json_str_or(j, "role", "?"), qk_json_str_or(j, "driver", "?"));
    printf("current key:   %s\n", kid ? kid : "(none yet)");
    if (kid)
        printf("installed:     %s (%.0f s ago)\n", qk_json_str_or(j, "installed_at", "?"),
               qk_json_num_or(j, "key_age_s", 0));
    const char *agreed = qk_json_str_or(j, "agreed_key_id", NULL);
    if (agreed && (!kid || strcmp(agreed, kid) != 0))
        printf("agreed key:    %s (no handshake under it yet)\n", agreed);
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "blocked")))
        printf("tunnel:        BLOCKED (%s)\n", qk_json_str_or(j, "blocked_reason", "?"));
    printf("SA:            %s%s%s\n", qk_json_str_or(sa, "state", "?"), *ref ? " #" : "", ref);
    printf("PPK confirmed: %s\n", cJSON_IsTrue(ppk)    ? "yes"
                                  : cJSON_IsFalse(ppk) ? "NO"
                                                       : "not confirmable by this gateway");
    if (next)
        printf("next rotation: %s (in %.0f s)\n", next, qk_json_num_or(j, "next_rotation_in_s", 0));
    printf("last error:    %s%s%s%s\n", qk_json_str_or(j, "last_error", "none"),
           err_at ? " (at " : "", err_at ? err_at : "", err_at ? ")" : "");
    printf("rotations:     %.0f ok, %.0f failed\n", qk_json_num_or(j, "rotations_ok", 0),
           qk_json_num_or(j, "rotations_failed", 0));
    cJSON_Delete(j);
    return 0;
}
