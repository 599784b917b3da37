/* http1.h - HTTP/1.1 message syntax for the server side (RFC 9112, RFC 9110): the front end's
 * own request parser and response writer, so that plaintext goes from TLS to the request
 * envelope without a socketpair and a second HTTP library in between.
 *
 * Pure functions: no I/O, no allocation, no global state. Validate before parse (the request
 * head is checked whole before anything is taken from it); every length is bounded by the
 * limits below. The caller (tls_server.c) owns the bytes: a head is parsed in place in the
 * caller's buffer, and every string of a qk_http1_head points into that buffer. */
#ifndef QK_HTTP1_H
#define QK_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define QK_H1_HEAD_MAX   16384 /* request line + header fields + the empty line, bytes */
#define QK_H1_FIELDS_MAX 64    /* header fields of a request (431 past it) */
#define QK_H1_ARGS_MAX   64    /* query parameters (400 past it) */

typedef struct {
    const char *name;  /* as sent (compare case-insensitively) */
    const char *value; /* leading and trailing whitespace removed */
} qk_http1_field;

/* A parsed request head. Every string is NUL-terminated and points into the buffer given to
 * qk_http1_parse_head, which must outlive the head. */
typedef struct {
    const char *method; /* as sent (methods are case-sensitive, RFC 9110 9.1) */
    const char *path;   /* percent-decoded, without the query; "*" for OPTIONS * */
    unsigned minor;     /* HTTP/1.<minor>: 0 or 1 */
    qk_http1_field fields[QK_H1_FIELDS_MAX];
    unsigned nfields;
    qk_http1_field args[QK_H1_ARGS_MAX]; /* the query: name and value percent-decoded, '+' is a
                                            space; a parameter without '=' has value "" */
    unsigned nargs;
    bool has_length;         /* a Content-Length field */
    uint64_t content_length; /* its value (0 without one) */
    bool chunked;            /* Transfer-Encoding: chunked */
    bool keep_alive;         /* HTTP/1.1 without "Connection: close", or HTTP/1.0 with
                                "Connection: keep-alive" (RFC 9112 9.3) */
    bool expect_continue;    /* Expect: 100-continue (RFC 9110 10.1.1) */
} qk_http1_head;

/* Where a request head ends. data[0..len) is what has arrived of it; *scanned is where the
 * previous call for the same head stopped (start with 0; the scan never goes back more than
 * needed, so feeding a head byte by byte costs O(n)). Returns the length of the head through
 * its empty line (CRLF CRLF, or LF LF: RFC 9112 2.2 lets a recipient accept a bare LF), 0
 * when it is not complete yet, or a status to answer when it cannot become a valid head:
 * 414 when the request line alone is longer than QK_H1_HEAD_MAX, 431 when the head is.
 * Empty lines before the request line (RFC 9112 2.2) are part of the head. */
size_t qk_http1_head_scan(const char *data, size_t len, size_t *scanned, unsigned *status);

/* Parse the complete head buf[0..len) (as found by qk_http1_head_scan) in place into *out.
 * Returns 0, or the status code to answer (the connection is closed after it):
 *   400 malformed request line, header field, percent-encoding of %00, Content-Length, a
 *       HTTP/1.1 request without exactly one Host (RFC 9112 3.2), both Transfer-Encoding and
 *       Content-Length (RFC 9112 6.3: smuggling), Transfer-Encoding in HTTP/1.0, whitespace
 *       between a field name and its colon (RFC 9112 5.1), obs-fold (RFC 9112 5.2), more than
 *       QK_H1_ARGS_MAX query parameters;
 *   431 more than QK_H1_FIELDS_MAX fields;
 *   501 a transfer coding other than a lone "chunked";
 *   505 an HTTP version other than 1.0 and 1.1.
 * Request targets: origin-form, absolute-form (RFC 9112 3.2.2: the path and query are taken,
 * the authority ignored) and asterisk-form (OPTIONS only); anything else is 400. */
int qk_http1_parse_head(char *buf, size_t len, qk_http1_head *out);

/* The first field called name (case-insensitive), or NULL. */
const char *qk_http1_field_get(const qk_http1_head *h, const char *name);
/* The first query parameter called name (case-sensitive, decoded), or NULL; and how many. */
const char *qk_http1_arg(const qk_http1_head *h, const char *name);
unsigned qk_http1_arg_count(const qk_http1_head *h, const char *name);

/* Incremental decoder of the chunked transfer coding (RFC 9112 7.1). Start zeroed. */
typedef struct {
    int state;
    uint64_t left;  /* bytes left of the current chunk's data */
    size_t line;    /* bytes of the current size line, extension or trailer field so far */
    size_t trailer; /* bytes of trailer fields so far */
} qk_http1_chunked;

/* Decode buf[0..len): the data bytes are moved to the front of buf (the decoded stream is never
 * longer than the encoded one), *out_len of them; *consumed is how many input bytes were used
 * (the rest belongs to the next request when the body ended, else all are consumed).
 * Returns 0 (more input needed), 1 (the body ended: last chunk and trailer section read;
 * trailer fields are ignored) or 400 (malformed: a size that is not hex or overflows 2^63, a
 * size line, extension or trailer field longer than 4096 bytes, trailers over 16384 bytes,
 * data not followed by CRLF). */
int qk_http1_chunked_decode(qk_http1_chunked *st, char *buf, size_t len, size_t *consumed,
                            size_t *out_len);

/* A response head. */
typedef struct {
    unsigned status;          /* 100..599 */
    const char *content_type; /* NULL: no Content-Type */
    const char *allow;        /* NULL or "": no Allow */
    bool no_store;            /* Cache-Control: no-store */
    unsigned retry_after;     /* seconds; 0: no Retry-After */
    uint64_t content_length;  /* sent for every status but 1xx, 204 and 304 (RFC 9110 8.6) */
    bool close;               /* Connection: close */
    bool keep_alive_10;       /* an HTTP/1.0 client kept alive: Connection: keep-alive */
    const char *date;         /* IMF-fixdate (qk_http1_date), or NULL: no Date */
} qk_http1_response;

/* Write "HTTP/1.1 <status> <reason>", the fields above and the empty line into out. Returns
 * the length, or 0 when it does not fit in cap (or the status is out of range, or a value
 * holds a CR, LF or other control character). */
size_t qk_http1_write_head(char *out, size_t cap, const qk_http1_response *r);
/* The reason phrase of a status ("OK", "Not Found", ...; "Unknown" for one it does not know). */
const char *qk_http1_reason(unsigned status);
/* t as an IMF-fixdate (RFC 9110 5.6.7), "Sun, 06 Nov 1994 08:49:37 GMT": 29 characters and a
 * NUL. */
void qk_http1_date(time_t t, char out[30]);

#endif
