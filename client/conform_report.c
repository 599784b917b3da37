/* conform_report.c - conformance reports: text (evidence shown for every result that is not a
 * pass), JSON (everything) and JUnit XML (one testcase per check; fail = <failure>, skip =
 * <skipped>, warn = a pass with the warning in <system-out>); and the --list output. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "conform.h"

static const char *api_name(cf_api api)
{
    return api == CF_API_ETSI ? "etsi" : "skip";
}

size_t cf_xml_escape(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    if (cap == 0)
        return 0;
    for (; s && *s; s++) {
        const char *rep = NULL;
        char one[2] = {*s, '\0'};
        unsigned char ch = (unsigned char)*s;
        switch (ch) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&apos;";
            break;
        default:
            if ((ch < 0x20 && ch != '\n' && ch != '\t') || ch >= 0x7f)
                one[0] = '?';
            rep = one;
        }
        size_t l = strlen(rep);
        if (o + l + 1 > cap)
            break;
        memcpy(out + o, rep, l);
        o += l;
    }
    out[o] = '\0';
    return o;
}

/* Write s escaped for XML (any length). */
static int xml_put(FILE *f, const char *s)
{
    char buf[512];
    while (s && *s) {
        char chunk[64];
        size_t n = strnlen(s, sizeof chunk - 1);
        memcpy(chunk, s, n);
        chunk[n] = '\0';
        cf_xml_escape(chunk, buf, sizeof buf);
        if (fputs(buf, f) == EOF)
            return -1;
        s += n;
    }
    return 0;
}

/* ---- text ------------------------------------------------------------------------------------ */

static int report_text(FILE *f, cf_api api, const cf_run *run)
{
    for (size_t i = 0; i < run->n; i++) {
        const cf_result *r = &run->r[i];
        fprintf(f, "%-4s %s: %s\n", cf_status_name(r->status), r->check->id, r->summary);
        if (r->status == CF_PASS)
            continue;
        fprintf(f, "     rule: %s [%s]%s\n", r->check->rule, r->check->ref,
                r->check->advisory ? " (advisory)" : "");
        const char *e = r->evidence;
        while (e && *e) {
            const char *nl = strchr(e, '\n');
            int len = nl ? (int)(nl - e) : (int)strlen(e);
            fprintf(f, "     | %.*s\n", len, e);
            e = nl ? nl + 1 : e + len;
        }
    }
    fprintf(f, "qkd conform %s: %zu checks: %zu pass, %zu warn, %zu skip, %zu fail (%.1f s)\n",
            api_name(api), run->n, run->counts[CF_PASS], run->counts[CF_WARN], run->counts[CF_SKIP],
            run->counts[CF_FAIL], run->ms / 1000.0);
    return ferror(f) ? -1 : 0;
}

/* ---- JSON ------------------------------------------------------------------------------------ */

static cJSON *evidence_array(const char *ev)
{
    cJSON *a = cJSON_CreateArray();
    while (a && ev && *ev) {
        const char *nl = strchr(ev, '\n');
        size_t len = nl ? (size_t)(nl - ev) : strlen(ev);
        char *line = malloc(len + 1);
        if (!line) {
            cJSON_Delete(a);
            return NULL;
        }
        memcpy(line, ev, len);
        line[len] = '\0';
        cJSON *s = cJSON_CreateString(line);
        free(line);
        if (!s || !cJSON_AddItemToArray(a, s)) {
            cJSON_Delete(s);
            cJSON_Delete(a);
            return NULL;
        }
        ev = nl ? nl + 1 : ev + len;
    }
    return a;
}

static int report_json(FILE *f, cf_api api, const cf_run *run)
{
    cJSON *j = cJSON_CreateObject();
    cJSON *sum = j ? cJSON_AddObjectToObject(j, "summary") : NULL;
    cJSON *checks = NULL;
    bool ok = j && sum && cJSON_AddStringToObject(j, "api", api_name(api)) &&
              cJSON_AddNumberToObject(sum, "total", (double)run->n) &&
              cJSON_AddNumberToObject(sum, "pass", (double)run->counts[CF_PASS]) &&
              cJSON_AddNumberToObject(sum, "warn", (double)run->counts[CF_WARN]) &&
              cJSON_AddNumberToObject(sum, "skip", (double)run->counts[CF_SKIP]) &&
              cJSON_AddNumberToObject(sum, "fail", (double)run->counts[CF_FAIL]) &&
              cJSON_AddNumberToObject(sum, "seconds", run->ms / 1000.0) &&
              (checks = cJSON_AddArrayToObject(j, "checks"));
    for (size_t i = 0; ok && i < run->n; i++) {
        const cf_result *r = &run->r[i];
        cJSON *o = cJSON_CreateObject();
        cJSON *ev = evidence_array(r->evidence);
        ok = o && ev && cJSON_AddItemToArray(checks, o);
        if (!ok) {
            cJSON_Delete(o);
            cJSON_Delete(ev);
            break;
        }
        ok = cJSON_AddStringToObject(o, "id", r->check->id) &&
             cJSON_AddStringToObject(o, "status", cf_status_name(r->status)) &&
             cJSON_AddStringToObject(o, "summary", r->summary) &&
             cJSON_AddStringToObject(o, "rule", r->check->rule) &&
             cJSON_AddStringToObject(o, "ref", r->check->ref) &&
             cJSON_AddBoolToObject(o, "advisory", r->check->advisory) &&
             cJSON_AddBoolToObject(o, "consumes_keys", r->check->consumes) &&
             cJSON_AddNumberToObject(o, "ms", r->ms) && cJSON_AddItemToObject(o, "evidence", ev);
        if (!ok)
            cJSON_Delete(ev);
    }
    char *text = ok ? cJSON_Print(j) : NULL;
    cJSON_Delete(j);
    if (!text)
        return -1;
    int rc = fputs(text, f) == EOF || fputc('\n', f) == EOF ? -1 : 0;
    cJSON_free(text);
    return rc;
}

/* ---- JUnit XML ------------------------------------------------------------------------------- */

static int report_junit(FILE *f, cf_api api, const cf_run *run)
{
    const char *a = api_name(api);
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f,
            "<testsuites name=\"qkd conform %s\" tests=\"%zu\" failures=\"%zu\" "
            "skipped=\"%zu\" time=\"%.3f\">\n",
            a, run->n, run->counts[CF_FAIL], run->counts[CF_SKIP], run->ms / 1000.0);
    fprintf(f,
            "  <testsuite name=\"%s\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" "
            "skipped=\"%zu\" time=\"%.3f\">\n",
            a, run->n, run->counts[CF_FAIL], run->counts[CF_SKIP], run->ms / 1000.0);
    for (size_t i = 0; i < run->n; i++) {
        const cf_result *r = &run->r[i];
        char cls[128];
        const char *dot = strrchr(r->check->id, '.');
        snprintf(cls, sizeof cls, "%.*s", dot ? (int)(dot - r->check->id) : 0, r->check->id);
        fputs("    <testcase classname=\"", f);
        xml_put(f, cls);
        fputs("\" name=\"", f);
        xml_put(f, r->check->id);
        fprintf(f, "\" time=\"%.3f\">\n", r->ms / 1000.0);
        if (r->status == CF_FAIL || r->status == CF_SKIP) {
            fputs(r->status == CF_FAIL ? "      <failure type=\"nonconformance\" message=\""
                                       : "      <skipped message=\"",
                  f);
            xml_put(f, r->summary);
            if (r->status == CF_FAIL) {
                fputs("\">", f);
                xml_put(f, r->check->rule);
                fputs(" [", f);
                xml_put(f, r->check->ref);
                fputs("]</failure>\n", f);
            } else {
                fputs("\"/>\n", f);
            }
        }
        fputs("      <system-out>", f);
        if (r->status == CF_WARN) {
            fputs("WARN (advisory): ", f);
            xml_put(f, r->summary);
            fputs("\n", f);
        }
        xml_put(f, r->evidence);
        fputs("</system-out>\n    </testcase>\n", f);
    }
    fputs("  </testsuite>\n</testsuites>\n", f);
    return ferror(f) ? -1 : 0;
}

int cf_report(FILE *f, cf_format fmt, cf_api api, const cf_run *run)
{
    int rc;
    switch (fmt) {
    case CF_FMT_JSON:
        rc = report_json(f, api, run);
        break;
    case CF_FMT_JUNIT:
        rc = report_junit(f, api, run);
        break;
    default:
        rc = report_text(f, api, run);
    }
    if (fflush(f) != 0)
        rc = -1;
    return rc;
}

int cf_list(FILE *f, cf_api api, bool json)
{
    size_t n;
    const cf_check *c = cf_checks(api, &n);
    if (!json) {
        for (size_t i = 0; i < n; i++)
            fprintf(f, "%-40s %s%s%s [%s]\n", c[i].id, c[i].rule,
                    c[i].advisory ? " (advisory)" : "", c[i].consumes ? " (consumes keys)" : "",
                    c[i].ref);
        return fflush(f) == 0 && !ferror(f) ? 0 : -1;
    }
    cJSON *a = cJSON_CreateArray();
    bool ok = a != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(a, o)) {
            cJSON_Delete(o);
            ok = false;
            break;
        }
        ok = cJSON_AddStringToObject(o, "id", c[i].id) &&
             cJSON_AddStringToObject(o, "rule", c[i].rule) &&
             cJSON_AddStringToObject(o, "ref", c[i].ref) &&
             cJSON_AddBoolToObject(o, "advisory", c[i].advisory) &&
             cJSON_AddBoolToObject(o, "consumes_keys", c[i].consumes);
    }
    char *text = ok ? cJSON_Print(a) : NULL;
    cJSON_Delete(a);
    if (!text)
        return -1;
    int rc = fputs(text, f) == EOF || fputc('\n', f) == EOF || fflush(f) != 0 ? -1 : 0;
    cJSON_free(text);
    return rc;
}
