/* vici_msg.h - the strongSwan VICI message format, written from the protocol description in
 * strongSwan's src/libcharon/plugins/vici/README.md (no libvici, no libstrongswan).
 *
 * A message is a sequence of elements: SECTION_START(name), SECTION_END, KEY_VALUE(name,
 * value), LIST_START(name), LIST_ITEM(value), LIST_END. Names are 1..255 octets, values
 * 0..65535 octets. The builder encodes; the parser decodes an untrusted message into a bounded
 * tree and rejects anything malformed (wrong nesting, truncation, limits). */
#ifndef QKB_VICI_MSG_H
#define QKB_VICI_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qk_err.h"

/* Element types on the wire. */
enum {
    VICI_SECTION_START = 1,
    VICI_SECTION_END = 2,
    VICI_KEY_VALUE = 3,
    VICI_LIST_START = 4,
    VICI_LIST_ITEM = 5,
    VICI_LIST_END = 6,
};

#define VICI_MAX_DEPTH 32           /* nested sections */
#define VICI_MAX_NODES 20000        /* tree nodes per parsed message */
#define VICI_MAX_MSG   (512 * 1024) /* one packet (README: a segment is at most 512 KiB) */

/* ---- builder ------------------------------------------------------------------------------ */

/* The buffer may hold key material (load-shared data): vici_builder_free wipes it. The first
 * error sticks (err != 0) and every later call is a no-op, so callers check once at the end. */
typedef struct {
    uint8_t *buf;
    size_t len, cap, max;
    int depth; /* open sections */
    bool in_list;
    int err; /* 0 or a qk_status */
} vici_builder;

void vici_builder_init(vici_builder *b, size_t max_len);
void vici_builder_free(vici_builder *b);
void vici_section_start(vici_builder *b, const char *name);
void vici_section_end(vici_builder *b);
void vici_kv(vici_builder *b, const char *name, const void *value, size_t len);
void vici_kv_str(vici_builder *b, const char *name, const char *value);
void vici_kv_u64(vici_builder *b, const char *name, uint64_t v);
void vici_list_start(vici_builder *b, const char *name);
void vici_list_item(vici_builder *b, const void *value, size_t len);
void vici_list_item_str(vici_builder *b, const char *value);
void vici_list_end(vici_builder *b);
/* Checks that every section and list is closed. Returns 0 or the sticky error. */
int vici_builder_finish(vici_builder *b, qk_err *err);

/* ---- parsed tree -------------------------------------------------------------------------- */

typedef enum { VICI_N_SECTION, VICI_N_KV, VICI_N_LIST, VICI_N_ITEM } vici_node_type;

typedef struct vici_node {
    vici_node_type type;
    char name[256]; /* sections, key-values and lists; "" for items */
    uint8_t *value; /* key-values and list items: len octets + a NUL (for printing) */
    size_t value_len;
    struct vici_node *child; /* sections and lists */
    struct vici_node *next;
} vici_node;

/* Parse a message (the bytes after the packet header). Returns the root section (name "") or
 * NULL with err set (QK_EINVAL malformed, QK_ELIMIT too deep / too many nodes). */
vici_node *vici_parse(const uint8_t *msg, size_t len, qk_err *err);
/* Frees the tree, wiping values. NULL is a no-op. */
void vici_tree_free(vici_node *root);

/* First direct child of sec with this name and type (NULL if none). */
const vici_node *vici_child(const vici_node *sec, const char *name, vici_node_type type);
/* A key-value of sec as a NUL-terminated string; NULL if absent or if the value holds a NUL
 * byte (so that it can be printed and compared safely). */
const char *vici_get_str(const vici_node *sec, const char *name);
/* "success = yes" in a command response. */
bool vici_success(const vici_node *root);
/* Value of key "errmsg" or "" (printable, truncated to cap). */
void vici_errmsg(const vici_node *root, char *out, size_t cap);
/* Copy a value into out as a printable string: control and non-ASCII octets become '?'. */
void vici_printable(const uint8_t *v, size_t len, char *out, size_t cap);

#endif
