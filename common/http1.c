/* http1.c - HTTP/1.1 message syntax for the server side (http1.h): where a request head ends,
 * its parse in place, the chunked transfer coding and the response head.
 *
 * Validate before parse: qk_http1_parse_head walks the whole head once without writing
 * anything (request line, every field line, then the fields that frame the message), and only
 * a head that passed is tokenised in place, in a second walk that cannot fail. Every loop is
 * bounded by the input's length; no allocation, no global state. */
#include "http1.h"

#include <string.h>

#define CHUNK_LINE_MAX 4096  /* a chunk size line, extensions included, or a trailer field */
#define TRAILER_MAX    16384 /* the trailer section */
#define CL_DIGITS_MAX  18    /* Content-Length: below 10^18, so no overflow of a uint64_t */
#define CHUNK_SIZE_MAX 0x7fffffffffffffffULL /* a chunk size stays below 2^63 */

/* A byte range of the head, not NUL-terminated. */
typedef struct {
    const char *p;
    size_t n;
} span;

/* ---- characters ----------------------------------------------------------------------- */

static int ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* tchar (RFC 9110 5.6.2): the characters of a token (method, field name, coding). */
static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* A control character: CTL (RFC 5234 B.1) */
static bool is_ctl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (unsigned char)ascii_lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* s equals the lower-case literal lit, ignoring ASCII case. */
static bool span_ieq(span s, const char *lit)
{
    size_t n = strlen(lit);
    if (s.n != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (ascii_lower((unsigned char)s.p[i]) != lit[i])
            return false;
    return true;
}

static bool span_has_prefix_i(span s, const char *lit)
{
    size_t n = strlen(lit);
    return s.n >= n && span_ieq((span){s.p, n}, lit);
}

static bool cstr_ieq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (ascii_lower((unsigned char)*a) != ascii_lower((unsigned char)*b))
            return false;
    return *a == *b;
}

static span trim_ows(span s)
{
    while (s.n && is_ows(s.p[0])) {
        s.p++;
        s.n--;
    }
    while (s.n && is_ows(s.p[s.n - 1]))
        s.n--;
    return s;
}

/* The elements of a comma-separated list (RFC 9110 5.6.1), OWS around each removed. A value
 * always has at least one element (possibly empty). */
typedef struct {
    span rest;
    bool done;
} list_iter;

static bool list_next(list_iter *it, span *elem)
{
    if (it->done)
        return false;
    const char *comma = memchr(it->rest.p, ',', it->rest.n);
    if (!comma) {
        *elem = trim_ows(it->rest);
        it->done = true;
        return true;
    }
    size_t n = (size_t)(comma - it->rest.p);
    *elem = trim_ows((span){it->rest.p, n});
    it->rest.p = comma + 1;
    it->rest.n -= n + 1;
    return true;
}

/* ---- qk_http1_head_scan --------------------------------------------------------------- */

/* Whether the line that ends with the LF at d[i] is empty: nothing, or a lone CR, before its
 * LF (RFC 9112 2.2: a recipient may take a bare LF as the line terminator). */
static bool line_empty(const char *d, size_t i)
{
    if (i == 0 || d[i - 1] == '\n')
        return true;
    return d[i - 1] == '\r' && (i == 1 || d[i - 2] == '\n');
}

/* Whether the LF at d[i] ends the head: it ends an empty line that follows a non-empty one.
 * An empty line after empty lines only is one of the empty lines the request line may follow
 * (RFC 9112 2.2); after a non-empty line it is the end of the field section (RFC 9112 2.1).
 * Only the bytes just before i are read, so a scan can resume anywhere. */
static bool head_ends_at(const char *d, size_t i)
{
    if (!line_empty(d, i))
        return false;
    size_t start = (i == 0 || d[i - 1] == '\n') ? i : i - 1;
    return start > 0 && !line_empty(d, start - 1);
}

size_t qk_http1_head_scan(const char *data, size_t len, size_t *scanned, unsigned *status)
{
    if (status)
        *status = 0;
    if (!data)
        len = 0;
    size_t lim = len < QK_H1_HEAD_MAX ? len : QK_H1_HEAD_MAX;
    size_t i = scanned && *scanned <= lim ? *scanned : 0;
    while (i < lim) {
        const char *lf = memchr(data + i, '\n', lim - i);
        if (!lf)
            break;
        i = (size_t)(lf - data);
        if (head_ends_at(data, i)) {
            if (scanned)
                *scanned = i + 1;
            return i + 1;
        }
        i++;
    }
    if (scanned)
        *scanned = lim;
    if (len < QK_H1_HEAD_MAX)
        return 0;
    /* No end within the limit: 414 when not even the request line ended (RFC 9112 3: "A
     * server that receives a request-target longer than any URI it wishes to parse MUST
     * respond with a 414"), else 431 (RFC 6585 5). Once, when giving up: O(n). */
    unsigned st = 414;
    for (size_t j = 0; j < lim; j++)
        if (data[j] == '\n' && !line_empty(data, j)) {
            st = 431;
            break;
        }
    if (status)
        *status = st;
    return 0;
}

/* ---- qk_http1_parse_head: validation -------------------------------------------------- */

/* The next line of buf[*pos..len) without its LF and a CR before it; false at the end of the
 * buffer (no LF left). */
static bool next_line(const char *buf, size_t len, size_t *pos, span *line)
{
    if (*pos >= len)
        return false;
    const char *lf = memchr(buf + *pos, '\n', len - *pos);
    if (!lf)
        return false;
    size_t end = (size_t)(lf - buf);
    line->p = buf + *pos;
    line->n = end - *pos;
    if (line->n && line->p[line->n - 1] == '\r')
        line->n--;
    *pos = end + 1;
    return true;
}

/* What the validation found, for the tokenising walk and the framing fields. */
typedef struct {
    span method, target;
    span path;  /* before the '?' (empty for an absolute-form without a path) */
    span query; /* after the '?' */
    bool root;  /* absolute-form without a path: the path is "/" (RFC 9112 3.2.2) */
    unsigned minor;
    size_t fields; /* offset of the first field line */
    unsigned nfields;
    bool has_length;
    uint64_t length;
    unsigned te_codings; /* Transfer-Encoding list elements, over every such field */
    unsigned te_chunked; /* of which "chunked" */
    unsigned hosts;
    bool conn_close, conn_keep_alive, expect_continue;
} head_info;

/* HTTP-version (RFC 9112 2.3): "HTTP/" DIGIT "." DIGIT, case-sensitive. 0 with the minor
 * version, 505 for a well-formed version other than 1.0 and 1.1 (RFC 9110 15.6.6), or 400. */
static int check_version(span v, unsigned *minor)
{
    if (v.n != 8 || memcmp(v.p, "HTTP/", 5) != 0 || !is_digit(v.p[5]) || v.p[6] != '.' ||
        !is_digit(v.p[7]))
        return 400;
    if (v.p[5] != '1' || (v.p[7] != '0' && v.p[7] != '1'))
        return 505;
    *minor = (unsigned)(v.p[7] - '0');
    return 0;
}

/* The request-target's form (RFC 9112 3.2): origin-form, absolute-form with an http or https
 * scheme (its authority ignored, RFC 9112 3.2.2), or asterisk-form for OPTIONS (RFC 9112
 * 3.2.4). Sets the path and the query. */
static int check_target(head_info *h)
{
    span t = h->target;
    span pq = t;
    h->root = false;
    if (t.n == 1 && t.p[0] == '*') {
        if (!(h->method.n == 7 && memcmp(h->method.p, "OPTIONS", 7) == 0))
            return 400;
        h->path = t;
        h->query = (span){t.p + 1, 0};
        return 0;
    }
    if (t.p[0] != '/') {
        size_t skip;
        if (span_has_prefix_i(t, "http://"))
            skip = 7;
        else if (span_has_prefix_i(t, "https://"))
            skip = 8;
        else
            return 400; /* authority-form (CONNECT) or anything else */
        size_t a = skip;
        while (a < t.n && t.p[a] != '/' && t.p[a] != '?')
            a++;
        /* an http(s) URI with an empty host is invalid and must be rejected (RFC 9110 4.2.1,
         * 4.2.2) */
        if (a == skip)
            return 400;
        pq = (span){t.p + a, t.n - a};
    }
    const char *q = memchr(pq.p, '?', pq.n);
    size_t plen = q ? (size_t)(q - pq.p) : pq.n;
    h->path = (span){pq.p, plen};
    h->query = q ? (span){q + 1, pq.n - plen - 1} : (span){pq.p + pq.n, 0};
    h->root = plen == 0;
    return 0;
}

/* The query's parameters: '&'-separated, empty pieces skipped (the form encoding of the URL
 * Standard, application/x-www-form-urlencoded, as libmicrohttpd splits it). */
static unsigned count_args(span q)
{
    unsigned n = 0;
    size_t i = 0;
    while (i < q.n) {
        const char *amp = memchr(q.p + i, '&', q.n - i);
        size_t end = amp ? (size_t)(amp - q.p) : q.n;
        if (end > i)
            n++;
        i = end + 1;
    }
    return n;
}

/* request-line = method SP request-target SP HTTP-version (RFC 9112 3), single spaces. */
static int check_request_line(span line, head_info *h)
{
    const char *sp1 = memchr(line.p, ' ', line.n);
    if (!sp1 || sp1 == line.p)
        return 400;
    h->method = (span){line.p, (size_t)(sp1 - line.p)};
    for (size_t i = 0; i < h->method.n; i++) /* method = token (RFC 9110 9.1) */
        if (!is_tchar((unsigned char)h->method.p[i]))
            return 400;
    size_t rest = line.n - h->method.n - 1;
    const char *sp2 = memchr(sp1 + 1, ' ', rest);
    if (!sp2 || sp2 == sp1 + 1)
        return 400;
    h->target = (span){sp1 + 1, (size_t)(sp2 - sp1 - 1)};
    span version = {sp2 + 1, rest - h->target.n - 1};
    int st = check_version(version, &h->minor);
    if (st)
        return st;
    /* no whitespace or control character in a request-target (RFC 9112 3.2, RFC 3986 2) */
    for (size_t i = 0; i < h->target.n; i++) {
        unsigned char c = (unsigned char)h->target.p[i];
        if (c <= 0x20 || c == 0x7f)
            return 400;
    }
    st = check_target(h);
    if (st)
        return st;
    /* "%00" would cut the decoded path or a parameter short: refused wherever it appears
     * (a '%' cannot belong to an escape before it, since '%' is not a hex digit) */
    for (size_t i = 0; i + 2 < h->target.n; i++)
        if (h->target.p[i] == '%' && h->target.p[i + 1] == '0' && h->target.p[i + 2] == '0')
            return 400;
    if (count_args(h->query) > QK_H1_ARGS_MAX)
        return 400;
    return 0;
}

/* field-line = field-name ":" OWS field-value OWS (RFC 9112 5): the name and the value with
 * the OWS around it removed. 0 or 400. */
static int split_field(span line, span *name, span *value)
{
    /* a line that starts with whitespace is obs-fold, or whitespace before the first field
     * (RFC 9112 5.2, 2.2): rejected */
    if (line.n == 0 || is_ows(line.p[0]))
        return 400;
    const char *colon = memchr(line.p, ':', line.n);
    if (!colon || colon == line.p)
        return 400;
    *name = (span){line.p, (size_t)(colon - line.p)};
    /* field-name = token (RFC 9110 5.1); whitespace before the colon is not one (RFC 9112
     * 5.1: "MUST reject ... with a response status code of 400") */
    for (size_t i = 0; i < name->n; i++)
        if (!is_tchar((unsigned char)name->p[i]))
            return 400;
    *value = trim_ows((span){colon + 1, line.n - name->n - 1});
    /* field-value = *field-content: VCHAR, obs-text, SP and HTAB (RFC 9110 5.5); NUL, CR
     * and LF are refused (RFC 9110 5.5: "MUST either reject the message or replace"), and so
     * is any other control */
    for (size_t i = 0; i < value->n; i++) {
        unsigned char c = (unsigned char)value->p[i];
        if (is_ctl(c) && c != '\t')
            return 400;
    }
    return 0;
}

/* Content-Length = 1*DIGIT (RFC 9110 8.6); a list of one value repeated, or that value in
 * several fields, is that value; different values are refused (RFC 9110 8.6, RFC 9112 6.3). */
static int check_content_length(span v, head_info *h)
{
    list_iter it = {v, false};
    span e;
    while (list_next(&it, &e)) {
        if (e.n == 0 || e.n > CL_DIGITS_MAX)
            return 400;
        uint64_t x = 0;
        for (size_t i = 0; i < e.n; i++) {
            if (!is_digit(e.p[i]))
                return 400;
            x = x * 10 + (uint64_t)(e.p[i] - '0');
        }
        if (h->has_length && x != h->length)
            return 400;
        h->has_length = true;
        h->length = x;
    }
    return 0;
}

/* uri-host [ ":" port ] (RFC 9110 7.2, RFC 3986 3.2.2): reg-name, IP-literal, IPv4 and port
 * characters; no userinfo. */
static bool host_char(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != '\0' && strchr("-._~%!$&'()*+,;=:[]", c) != NULL;
}

/* The fields that frame the message or the connection, from one field line. */
static int note_field(span name, span value, head_info *h)
{
    list_iter it = {value, false};
    span e;
    if (span_ieq(name, "content-length"))
        return check_content_length(value, h);
    if (span_ieq(name, "transfer-encoding")) {
        /* Transfer-Encoding = #transfer-coding (RFC 9112 6.1); the fields form one list */
        while (list_next(&it, &e)) {
            h->te_codings++;
            if (span_ieq(e, "chunked"))
                h->te_chunked++;
        }
    } else if (span_ieq(name, "host")) {
        h->hosts++;
        for (size_t i = 0; i < value.n; i++)
            if (!host_char((unsigned char)value.p[i]))
                return 400; /* RFC 9112 3.2: an invalid Host field value is a 400 */
    } else if (span_ieq(name, "connection")) {
        /* Connection = #connection-option, case-insensitive (RFC 9110 7.6.1) */
        while (list_next(&it, &e)) {
            if (span_ieq(e, "close"))
                h->conn_close = true;
            else if (span_ieq(e, "keep-alive"))
                h->conn_keep_alive = true;
        }
    } else if (span_ieq(name, "expect")) {
        while (list_next(&it, &e))
            if (span_ieq(e, "100-continue")) /* case-insensitive (RFC 9110 10.1.1) */
                h->expect_continue = true;
    }
    return 0;
}

/* The framing rules over the whole field section. */
static int check_framing(const head_info *h)
{
    if (h->te_codings) {
        /* RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing; with Content-Length
         * it is a possible request smuggling (RFC 9112 6.3 item 3, 11.2): both refused */
        if (h->minor == 0 || h->has_length)
            return 400;
    }
    /* RFC 9112 3.2: 400 for an HTTP/1.1 request without a Host field, and for any request
     * with more than one */
    if (h->hosts > 1 || (h->minor == 1 && h->hosts == 0))
        return 400;
    /* only a lone "chunked" is understood: any other coding list is a 501 (RFC 9112 6.1) */
    if (h->te_codings && !(h->te_codings == 1 && h->te_chunked == 1))
        return 501;
    return 0;
}

static int validate_head(const char *buf, size_t len, head_info *h)
{
    size_t pos = 0;
    span line;
    /* empty lines before the request line are ignored (RFC 9112 2.2) */
    do {
        if (!next_line(buf, len, &pos, &line))
            return 400;
    } while (line.n == 0);
    int st = check_request_line(line, h);
    if (st)
        return st;
    h->fields = pos;
    for (;;) {
        if (!next_line(buf, len, &pos, &line))
            return 400; /* no empty line: not a whole head */
        if (line.n == 0)
            break;
        if (h->nfields == QK_H1_FIELDS_MAX)
            return 431; /* RFC 6585 5 */
        span name, value;
        st = split_field(line, &name, &value);
        if (!st)
            st = note_field(name, value, h);
        if (st)
            return st;
        h->nfields++;
    }
    if (pos != len)
        return 400; /* bytes after the empty line are not part of the head */
    return check_framing(h);
}

/* ---- qk_http1_parse_head: the tokenising walk ----------------------------------------- */

/* Percent-decode s[0..n) in place (RFC 3986 2.1), '+' as a space first when plus is set (the
 * form encoding of a query); an escape that is not '%' and two hex digits is kept as it is.
 * NUL-terminates the result at s[len] (at most s[n], the delimiter after the range) and
 * returns its length. A decoded NUL cannot occur: "%00" was refused. */
static size_t decode_in_place(char *s, size_t n, bool plus)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int hi, lo;
        if (c == '+' && plus) {
            c = ' ';
        } else if (c == '%' && i + 2 < n && (hi = hex_value((unsigned char)s[i + 1])) >= 0 &&
                   (lo = hex_value((unsigned char)s[i + 2])) >= 0) {
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        s[o++] = c;
    }
    s[o] = '\0';
    return o;
}

/* The writable byte of buf that p (a span of the validation walk) points at. */
static char *at(char *buf, const char *p)
{
    return buf + (p - buf);
}

/* The query's parameters (count_args' pieces), each split at its first '=' before decoding. */
static void fill_args(char *buf, span q, qk_http1_head *out)
{
    size_t i = 0;
    while (i < q.n && out->nargs < QK_H1_ARGS_MAX) {
        const char *amp = memchr(q.p + i, '&', q.n - i);
        size_t end = amp ? (size_t)(amp - q.p) : q.n;
        if (end > i) {
            char *piece = at(buf, q.p + i);
            size_t n = end - i;
            char *eq = memchr(piece, '=', n);
            qk_http1_field *a = &out->args[out->nargs++];
            a->name = piece;
            if (eq) {
                size_t nl = (size_t)(eq - piece);
                decode_in_place(piece, nl, true);
                decode_in_place(eq + 1, n - nl - 1, true);
                a->value = eq + 1;
            } else {
                /* no '=': the value is the empty string at the name's terminator */
                a->value = piece + decode_in_place(piece, n, true);
            }
        }
        i = end + 1;
    }
}

/* The second walk, over a head validate_head accepted: NUL-terminates and decodes in place. */
static void fill_head(char *buf, size_t len, const head_info *h, qk_http1_head *out)
{
    memset(out, 0, sizeof *out);
    char *m = at(buf, h->method.p);
    m[h->method.n] = '\0';
    out->method = m;
    if (h->root) {
        /* absolute-form without a path: "/" (RFC 9112 3.2.2, RFC 9110 4.2.3), written over
         * the scheme, which is ignored */
        char *t = at(buf, h->target.p);
        t[0] = '/';
        t[1] = '\0';
        out->path = t;
    } else {
        char *p = at(buf, h->path.p);
        decode_in_place(p, h->path.n, false); /* '+' is a plus in a path (RFC 3986 3.3) */
        out->path = p;
    }
    fill_args(buf, h->query, out);
    size_t pos = h->fields;
    span line;
    while (out->nfields < QK_H1_FIELDS_MAX && next_line(buf, len, &pos, &line) && line.n) {
        span name, value;
        if (split_field(line, &name, &value) != 0)
            break; /* cannot happen: validated */
        char *n = at(buf, name.p), *v = at(buf, value.p);
        n[name.n] = '\0';  /* the colon */
        v[value.n] = '\0'; /* trailing OWS, the CR or the LF */
        out->fields[out->nfields++] = (qk_http1_field){n, v};
    }
    out->minor = h->minor;
    out->has_length = h->has_length;
    out->content_length = h->has_length ? h->length : 0;
    out->chunked = h->te_codings == 1 && h->te_chunked == 1;
    /* persistence (RFC 9112 9.3): "close" ends the connection; HTTP/1.1 persists by default,
     * HTTP/1.0 only with the "keep-alive" option */
    out->keep_alive = !h->conn_close && (h->minor == 1 || h->conn_keep_alive);
    /* a 100-continue expectation in an HTTP/1.0 request is ignored (RFC 9110 10.1.1) */
    out->expect_continue = h->minor == 1 && h->expect_continue;
}

int qk_http1_parse_head(char *buf, size_t len, qk_http1_head *out)
{
    if (!buf || !out || len == 0)
        return 400;
    if (len > QK_H1_HEAD_MAX)
        return 431;
    head_info h;
    memset(&h, 0, sizeof h);
    int st = validate_head(buf, len, &h);
    if (st)
        return st;
    fill_head(buf, len, &h, out);
    return 0;
}

/* ---- lookups -------------------------------------------------------------------------- */

const char *qk_http1_field_get(const qk_http1_head *h, const char *name)
{
    if (!h || !name)
        return NULL;
    unsigned n = h->nfields < QK_H1_FIELDS_MAX ? h->nfields : QK_H1_FIELDS_MAX;
    for (unsigned i = 0; i < n; i++)
        if (h->fields[i].name && cstr_ieq(h->fields[i].name, name))
            return h->fields[i].value;
    return NULL;
}

const char *qk_http1_arg(const qk_http1_head *h, const char *name)
{
    if (!h || !name)
        return NULL;
    unsigned n = h->nargs < QK_H1_ARGS_MAX ? h->nargs : QK_H1_ARGS_MAX;
    for (unsigned i = 0; i < n; i++)
        if (h->args[i].name && strcmp(h->args[i].name, name) == 0)
            return h->args[i].value;
    return NULL;
}

unsigned qk_http1_arg_count(const qk_http1_head *h, const char *name)
{
    if (!h || !name)
        return 0;
    unsigned n = h->nargs < QK_H1_ARGS_MAX ? h->nargs : QK_H1_ARGS_MAX, count = 0;
    for (unsigned i = 0; i < n; i++)
        if (h->args[i].name && strcmp(h->args[i].name, name) == 0)
            count++;
    return count;
}

/* ---- qk_http1_chunked_decode ---------------------------------------------------------- */

/* chunked-body = *chunk last-chunk trailer-section CRLF (RFC 9112 7.1), one byte at a time
 * except the chunk data; a bare LF ends a line as well (RFC 9112 2.2). */
enum {
    CH_SIZE0 = 0,    /* first hex digit of a chunk size (a zeroed struct starts here) */
    CH_SIZE,         /* more hex digits */
    CH_SIZE_BWS,     /* whitespace after the size: only a ';' may follow (RFC 9112 7.1.1) */
    CH_EXT,          /* a chunk extension, skipped */
    CH_SIZE_LF,      /* the LF after the size line's CR */
    CH_DATA,         /* chunk data */
    CH_DATA_CR,      /* the CRLF (or LF) after the data */
    CH_DATA_LF,      /* its LF */
    CH_TRAILER,      /* the start of a trailer line, or of the final empty line */
    CH_TRAILER_LINE, /* in a trailer field line, skipped */
    CH_TRAILER_LF,   /* the LF after a trailer field's CR */
    CH_END_LF,       /* the LF of the final CRLF */
    CH_DONE,         /* the body ended */
    CH_ERROR,        /* malformed: every later call answers 400 */
};

/* One byte of a line that is bounded by CHUNK_LINE_MAX (and the trailer section by
 * TRAILER_MAX). False when a limit is passed. */
static bool count_line_byte(qk_http1_chunked *st, bool trailer)
{
    if (++st->line > CHUNK_LINE_MAX)
        return false;
    return !trailer || ++st->trailer <= TRAILER_MAX;
}

/* The end of a chunk size line: its data, or the trailer section after the last chunk. */
static int after_size_line(qk_http1_chunked *st)
{
    st->line = 0;
    return st->left ? CH_DATA : CH_TRAILER;
}

/* After the size's digits (at_digits) or whitespace after them: BWS, then a chunk extension
 * (RFC 9112 7.1.1), or the line end right after the digits. */
static int after_size(qk_http1_chunked *st, unsigned char c, bool at_digits)
{
    if (is_ows((char)c))
        return CH_SIZE_BWS;
    if (c == ';')
        return CH_EXT;
    if (at_digits && c == '\r')
        return CH_SIZE_LF;
    if (at_digits && c == '\n')
        return after_size_line(st);
    return CH_ERROR;
}

/* The next state after byte c outside chunk data: CH_DONE after the final line, CH_ERROR on
 * malformed input. */
static int chunked_step(qk_http1_chunked *st, unsigned char c)
{
    int v = hex_value(c);
    switch (st->state) {
    case CH_SIZE0:
        if (v < 0 || !count_line_byte(st, false))
            return CH_ERROR; /* chunk-size = 1*HEXDIG */
        st->left = (uint64_t)v;
        return CH_SIZE;
    case CH_SIZE:
        if (c != '\n' && !count_line_byte(st, false))
            return CH_ERROR;
        if (v >= 0) {
            /* RFC 9112 7.1: "anticipate potentially large hexadecimal numerals and prevent
             * parsing errors due to integer conversion overflows" */
            if (st->left > (CHUNK_SIZE_MAX - (uint64_t)v) / 16)
                return CH_ERROR;
            st->left = st->left * 16 + (uint64_t)v;
            return CH_SIZE;
        }
        return after_size(st, c, true);
    case CH_SIZE_BWS:
        if (c != '\n' && !count_line_byte(st, false))
            return CH_ERROR;
        return after_size(st, c, false);
    case CH_EXT:
        if (c == '\n')
            return after_size_line(st);
        if (!count_line_byte(st, false))
            return CH_ERROR;
        if (c == '\r')
            return CH_SIZE_LF;
        /* chunk-ext (RFC 9112 7.1.1) is tokens, quoted strings and BWS: no control but HTAB */
        return is_ctl(c) && c != '\t' ? CH_ERROR : CH_EXT;
    case CH_SIZE_LF:
        return c == '\n' ? after_size_line(st) : CH_ERROR;
    case CH_DATA_CR:
        if (c == '\r')
            return CH_DATA_LF;
        return c == '\n' ? CH_SIZE0 : CH_ERROR;
    case CH_DATA_LF:
        return c == '\n' ? CH_SIZE0 : CH_ERROR;
    case CH_TRAILER:
        /* trailer-section = *( field-line CRLF ) (RFC 9112 7.1.2), then the empty line */
        if (c == '\n')
            return CH_DONE;
        if (c == '\r')
            return CH_END_LF;
        if (!count_line_byte(st, true))
            return CH_ERROR;
        return CH_TRAILER_LINE;
    case CH_TRAILER_LINE:
        if (c == '\n') {
            st->line = 0;
            return ++st->trailer <= TRAILER_MAX ? CH_TRAILER : CH_ERROR;
        }
        if (!count_line_byte(st, true))
            return CH_ERROR;
        return c == '\r' ? CH_TRAILER_LF : CH_TRAILER_LINE;
    case CH_TRAILER_LF:
        if (c != '\n')
            return CH_ERROR;
        st->line = 0;
        return ++st->trailer <= TRAILER_MAX ? CH_TRAILER : CH_ERROR;
    case CH_END_LF:
        return c == '\n' ? CH_DONE : CH_ERROR;
    default:
        return CH_ERROR;
    }
}

int qk_http1_chunked_decode(qk_http1_chunked *st, char *buf, size_t len, size_t *consumed,
                            size_t *out_len)
{
    if (!st || !consumed || !out_len)
        return 400;
    *consumed = 0;
    *out_len = 0;
    if (st->state == CH_DONE)
        return 1;
    if (st->state < CH_SIZE0 || st->state > CH_DONE || (!buf && len))
        st->state = CH_ERROR;
    if (st->state == CH_ERROR)
        return 400;
    size_t i = 0, out = 0;
    while (i < len) {
        if (st->state == CH_DATA) {
            size_t n = len - i;
            if ((uint64_t)n > st->left)
                n = (size_t)st->left;
            memmove(buf + out, buf + i, n); /* out <= i: the data only moves forward */
            out += n;
            i += n;
            st->left -= n;
            if (st->left == 0)
                st->state = CH_DATA_CR;
            continue;
        }
        st->state = chunked_step(st, (unsigned char)buf[i]);
        if (st->state == CH_ERROR) {
            *consumed = i;
            *out_len = out;
            return 400;
        }
        i++;
        if (st->state == CH_DONE) {
            *consumed = i;
            *out_len = out;
            return 1;
        }
    }
    *consumed = i;
    *out_len = out;
    return 0;
}

/* ---- responses ------------------------------------------------------------------------ */

/* Bounded appending to the caller's buffer; ok turns false for good once something does not
 * fit. */
typedef struct {
    char *p;
    size_t cap, len;
    bool ok;
} out_buf;

static void put(out_buf *o, const char *s)
{
    size_t n = strlen(s);
    if (!o->ok || n > o->cap - o->len) {
        o->ok = false;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void put_u64(out_buf *o, uint64_t v)
{
    char tmp[21];
    size_t i = sizeof tmp;
    tmp[--i] = '\0';
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(o, tmp + i);
}

static void put_field(out_buf *o, const char *name, const char *value)
{
    put(o, name);
    put(o, ": ");
    put(o, value);
    put(o, "\r\n");
}

/* A field value we may send: field-content (RFC 9110 5.5), no CR, LF or other control
 * character (which would split the head: response splitting) but HTAB. */
static bool sendable(const char *s)
{
    for (; *s; s++)
        if (is_ctl((unsigned char)*s) && *s != '\t')
            return false;
    return true;
}

size_t qk_http1_write_head(char *out, size_t cap, const qk_http1_response *r)
{
    if (!out || !r || r->status < 100 || r->status > 599)
        return 0;
    bool has_type = r->content_type && r->content_type[0];
    bool has_allow = r->allow && r->allow[0];
    if ((has_type && !sendable(r->content_type)) || (has_allow && !sendable(r->allow)) ||
        (r->date && !sendable(r->date)))
        return 0;
    out_buf o = {out, cap, 0, true};
    /* status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 4) */
    put(&o, "HTTP/1.1 ");
    put_u64(&o, r->status);
    put(&o, " ");
    put(&o, qk_http1_reason(r->status));
    put(&o, "\r\n");
    if (r->date)
        put_field(&o, "Date", r->date);
    if (has_type)
        put_field(&o, "Content-Type", r->content_type);
    /* no Content-Length in a 1xx or 204 (RFC 9110 8.6); none in a 304 either */
    if (r->status >= 200 && r->status != 204 && r->status != 304) {
        put(&o, "Content-Length: ");
        put_u64(&o, r->content_length);
        put(&o, "\r\n");
    }
    if (r->no_store)
        put_field(&o, "Cache-Control", "no-store");
    if (has_allow)
        put_field(&o, "Allow", r->allow);
    if (r->retry_after) {
        put(&o, "Retry-After: ");
        put_u64(&o, r->retry_after);
        put(&o, "\r\n");
    }
    if (r->close)
        put_field(&o, "Connection", "close");
    else if (r->keep_alive_10)
        put_field(&o, "Connection", "keep-alive");
    put(&o, "\r\n");
    if (!o.ok)
        return 0;
    if (o.len < cap)
        out[o.len] = '\0'; /* a convenience when there is room; the length is the answer */
    return o.len;
}

/* The reason phrases of RFC 9110 section 15 (and 429, 431 of RFC 6585 sections 4 and 5). */
static const struct {
    unsigned status;
    const char *reason;
} reasons[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {203, "Non-Authoritative Information"},
    {204, "No Content"},
    {205, "Reset Content"},
    {206, "Partial Content"},
    {300, "Multiple Choices"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {305, "Use Proxy"},
    {306, "Unused"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {407, "Proxy Authentication Required"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {417, "Expectation Failed"},
    {421, "Misdirected Request"},
    {422, "Unprocessable Content"},
    {426, "Upgrade Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

const char *qk_http1_reason(unsigned status)
{
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return "Unknown";
}

static void put_digits(char *p, int v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

/* IMF-fixdate (RFC 9110 5.6.7) with English names whatever the locale (strftime's %a and %b
 * follow LC_TIME). A time outside years 0-9999 gives the epoch rather than a longer text. */
void qk_http1_date(time_t t, char out[30])
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    if (!out)
        return;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || tm.tm_year < -1900 || tm.tm_year > 9999 - 1900 || tm.tm_wday < 0 ||
        tm.tm_wday > 6 || tm.tm_mon < 0 || tm.tm_mon > 11) {
        time_t zero = 0;
        gmtime_r(&zero, &tm);
    }
    memcpy(out, "Thu, 01 Jan 1970 00:00:00 GMT", 30);
    memcpy(out, days[tm.tm_wday], 3);
    put_digits(out + 5, tm.tm_mday, 2);
    memcpy(out + 8, months[tm.tm_mon], 3);
    put_digits(out + 12, tm.tm_year + 1900, 4);
    put_digits(out + 17, tm.tm_hour, 2);
    put_digits(out + 20, tm.tm_min, 2);
    put_digits(out + 23, tm.tm_sec, 2);
}
