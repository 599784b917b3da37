/* bridge_cmd_status.c - `qkd-bridge status (-c CONFIG | --admin URL) [--json]`: GET /status of
 * a running bridge, printed as text (key, SA, PPK confirmation, next rotation, last error,
 * counters) or as the admin listener's JSON. */
#include <stdio.h>

#include "bridge_cli.h"
#include "bridge_cmds.h"
#include "json_util.h"

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

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
    const char *kid = jstr(j, "key_id");
    printf("bridge:        %s (%s, driver %s)\n", jstr(j, "name") ? jstr(j, "name") : "?",
           jstr(j, "role") ? jstr(j, "role") : "?", jstr(j, "driver") ? jstr(j, "driver") : "?");
    printf("current key:   %s\n", kid ? kid : "(none yet)");
    if (kid)
        printf("installed:     %s (%.0f s ago)\n", jstr(j, "installed_at"), jnum(j, "key_age_s"));
    printf("SA:            %s%s%s\n", jstr(sa, "state") ? jstr(sa, "state") : "?",
           jstr(sa, "ref") && *jstr(sa, "ref") ? " #" : "", jstr(sa, "ref") ? jstr(sa, "ref") : "");
    printf("PPK confirmed: %s\n", cJSON_IsTrue(ppk)    ? "yes"
                                  : cJSON_IsFalse(ppk) ? "NO"
                                                       : "not confirmable by this gateway");
    if (jstr(j, "next_rotation"))
        printf("next rotation: %s (in %.0f s)\n", jstr(j, "next_rotation"),
               jnum(j, "next_rotation_in_s"));
    printf("last error:    %s%s%s%s\n", jstr(j, "last_error") ? jstr(j, "last_error") : "none",
           jstr(j, "last_error_at") ? " (at " : "",
           jstr(j, "last_error_at") ? jstr(j, "last_error_at") : "",
           jstr(j, "last_error_at") ? ")" : "");
    printf("rotations:     %.0f ok, %.0f failed\n", jnum(j, "rotations_ok"),
           jnum(j, "rotations_failed"));
    cJSON_Delete(j);
    return 0;
}
