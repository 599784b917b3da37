/* ini_config.h - INI loading on libinih with precise errors, and typed value parsers.
 * Errors name the file, the line and the key: "FILE:LINE: [section] key: message". */
#ifndef QK_INI_CONFIG_H
#define QK_INI_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "qk_err.h"

/* Called for each name=value. Return 0 to continue, or a negative qk_status after filling
 * err->msg (without file/line: the loader adds "FILE:LINE: [section] key: "). An unknown key
 * must be reported by the handler as an error ("unknown key"). */
typedef int (*qk_ini_handler)(void *user, const char *section, const char *key, const char *value,
                              qk_err *err);

/* Parse the file; stops at the first error. Returns 0 or QK_EINVAL (bad syntax / handler
 * error, message as above) or QK_EIO (cannot open; message names the file and errno). */
int qk_ini_load(const char *path, qk_ini_handler h, void *user, qk_err *err);

/* Split a section name "kind name" (e.g. "link KME_B") into kind and name; name may be
 * empty. Returns 0, or QK_EINVAL if a buffer is too small. */
int qk_ini_section_split(const char *section, char *kind, size_t kind_cap, char *name,
                         size_t name_cap);

/* Line of `key` in [section] of the file at path, for messages that point at a value after
 * loading (FILE:LINE): the last line that sets the key (name before '=' or ':', blanks
 * trimmed, as inih reads it, so the line of the value in effect); key NULL or not set: the
 * line of the section's header; section absent: 0. If lines is not NULL it receives the
 * number of lines read. Returns 0 too when the file cannot be opened. */
int qk_ini_locate(const char *path, const char *section, const char *key, int *lines);

/* Typed value parsers: all reject trailing garbage, empty strings and overflow. */
int qk_parse_u64(const char *v, uint64_t min, uint64_t max, uint64_t *out, qk_err *err);
int qk_parse_i64(const char *v, int64_t min, int64_t max, int64_t *out, qk_err *err);
int qk_parse_double(const char *v, double min, double max, double *out, qk_err *err);
/* true/false, yes/no, on/off, 1/0 (case-insensitive). */
int qk_parse_bool(const char *v, bool *out, qk_err *err);
/* One of two words, exactly (case-sensitive): *out = false for off_word, true for on_word;
 * anything else is an error "must be OFF_WORD or ON_WORD". */
int qk_parse_choice(const char *v, const char *off_word, const char *on_word, bool *out,
                    qk_err *err);
/* Durations: "250ms", "30s", "5m", "2h"; a bare number means seconds. Result in ms. */
int qk_parse_duration_ms(const char *v, uint64_t min_ms, uint64_t max_ms, uint64_t *out_ms,
                         qk_err *err);
/* "HOST:PORT" or "[V6]:PORT"; port 0..65535 (0 = ephemeral). */
int qk_parse_hostport(const char *v, char *host, size_t host_cap, uint16_t *port, qk_err *err);
/* Copy a string value into a fixed buffer, error if it does not fit or is empty. */
int qk_parse_str(const char *v, char *out, size_t cap, qk_err *err);

/* An identifier (node, KME, SAE, link ID): 1..max_len characters from [A-Za-z0-9_.-] plus any
 * character in `extra` (may be NULL). */
bool qk_id_valid(const char *s, size_t max_len, const char *extra);

/* Walk a comma-separated list: each entry is trimmed of blanks and passed to fn (not
 * NUL-terminated: entry, len). An empty entry (",,", a trailing comma, a blank list) is an
 * error, and so are more than max_entries entries (QK_ELIMIT). fn returns 0 or a negative
 * qk_status after filling err, which stops the walk. Returns 0 or that status. */
typedef int (*qk_list_fn)(void *user, const char *entry, size_t len, qk_err *err);
int qk_parse_list(const char *v, size_t max_entries, qk_list_fn fn, void *user, qk_err *err);

#endif
