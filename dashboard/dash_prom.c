/* dash_prom.c - the little of the Prometheus text exposition format qkd-dash reads from the
 * KMEs' admin /metrics: sample lines `name{k="v",...} value` (Prometheus "Exposition formats",
 * text format 0.0.4: https://prometheus.io/docs/instrumenting/exposition_formats/). Comment and
 * TYPE/HELP lines are skipped; label values are compared after parsing, never as substrings. */
#include <stdlib.h>
#include <string.h>

#include "dash.h"

#define LABEL_MAX 256

/* One sample line [p, end): name, label text and value. 0 or -1 (not a sample). */
static int parse_line(const char *p, const char *end, const char **name, size_t *nlen,
                      const char **labels, size_t *llen, double *v)
{
    const char *q = p;
    while (q < end && *q != '{' && *q != ' ')
        q++;
    *name = p;
    *nlen = (size_t)(q - p);
    *labels = "";
    *llen = 0;
    if (q < end && *q == '{') {
        const char *l = ++q;
        bool in_str = false;
        while (q < end && (in_str || *q != '}')) {
            if (*q == '\\' && in_str && q + 1 < end)
                q++;
            else if (*q == '"')
                in_str = !in_str;
            q++;
        }
        if (q >= end)
            return -1;
        *labels = l;
        *llen = (size_t)(q - l);
        q++;
    }
    while (q < end && *q == ' ')
        q++;
    char num[64];
    size_t n = 0;
    while (q < end && *q != ' ' && n < sizeof num - 1)
        num[n++] = *q++;
    num[n] = '\0';
    char *e = NULL;
    *v = strtod(num, &e);
    return (n > 0 && e && *e == '\0') ? 0 : -1;
}

void dash_prom_each(const char *text, const char *name,
                    void (*fn)(void *cls, const char *labels, size_t len, double v), void *cls)
{
    size_t want = strlen(name);
    for (const char *p = text; p && *p;) {
        const char *end = strchr(p, '\n');
        if (!end)
            end = p + strlen(p);
        const char *n, *l;
        size_t nlen, llen;
        double v;
        if (*p != '#' && parse_line(p, end, &n, &nlen, &l, &llen, &v) == 0 && nlen == want &&
            memcmp(n, name, want) == 0)
            fn(cls, l, llen, v);
        p = *end ? end + 1 : end;
    }
}

int dash_prom_label(const char *labels, size_t len, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    const char *p = labels, *end = labels + len;
    while (p < end) {
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (!eq || eq + 1 >= end || eq[1] != '"')
            return -1;
        const char *k = p;
        while (k < eq && (*k == ',' || *k == ' '))
            k++;
        bool match = (size_t)(eq - k) == klen && memcmp(k, key, klen) == 0;
        size_t n = 0;
        const char *q = eq + 2;
        for (; q < end && *q != '"'; q++) {
            char c = *q;
            if (c == '\\' && q + 1 < end) {
                c = *++q;
                if (c == 'n')
                    c = '\n';
            }
            if (match) {
                if (n + 1 >= cap)
                    return -1;
                out[n++] = c;
            }
        }
        if (q >= end)
            return -1;
        if (match) {
            out[n] = '\0';
            return 0;
        }
        p = q + 1;
    }
    return -1;
}

typedef struct {
    const char *const *want; /* "k=\"v\"" */
    double sum;
    bool any;
} sum_cls;

/* Every wanted k="v" is a label of the sample. */
static bool labels_match(const char *labels, size_t len, const char *const *want)
{
    for (size_t i = 0; want && want[i]; i++) {
        const char *eq = strchr(want[i], '=');
        char key[64], val[LABEL_MAX], got[LABEL_MAX];
        size_t kl = eq ? (size_t)(eq - want[i]) : 0;
        size_t vl = eq ? strlen(eq + 1) : 0;
        if (!eq || kl >= sizeof key || vl < 2 || vl - 2 >= sizeof val)
            return false;
        memcpy(key, want[i], kl);
        key[kl] = '\0';
        memcpy(val, eq + 2, vl - 2);
        val[vl - 2] = '\0';
        if (dash_prom_label(labels, len, key, got, sizeof got) != 0 || strcmp(got, val) != 0)
            return false;
    }
    return true;
}

static void sum_fn(void *cls, const char *labels, size_t len, double v)
{
    sum_cls *c = cls;
    if (labels_match(labels, len, c->want)) {
        c->sum += v;
        c->any = true;
    }
}

double dash_prom_sum(const char *text, const char *name, const char *const *labels)
{
    sum_cls c = {.want = labels};
    dash_prom_each(text, name, sum_fn, &c);
    return c.any ? c.sum : -1;
}
