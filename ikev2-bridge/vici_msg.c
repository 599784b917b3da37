/* vici_msg.c - VICI message encoding and strict decoding (see vici_msg.h). */
#include "vici_msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secbuf.h"

/* ---- builder ------------------------------------------------------------------------------ */

void vici_builder_init(vici_builder *b, size_t max_len)
{
    memset(b, 0, sizeof *b);
    b->max = max_len ? max_len : VICI_MAX_MSG;
}

void vici_builder_free(vici_builder *b)
{
    if (b->buf) {
        qk_wipe(b->buf, b->cap);
        free(b->buf);
    }
    memset(b, 0, sizeof *b);
}

/* Grow without realloc so that no unwiped copy of key material is left behind. */
static int reserve(vici_builder *b, size_t n)
{
    if (b->err)
        return -1;
    if (n > b->max || b->len > b->max - n) {
        b->err = QK_ELIMIT;
        return -1;
    }
    if (b->len + n <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n)
        cap *= 2;
    if (cap > b->max)
        cap = b->max;
    uint8_t *nb = malloc(cap);
    if (!nb) {
        b->err = QK_ENOMEM;
        return -1;
    }
    if (b->buf) {
        memcpy(nb, b->buf, b->len);
        qk_wipe(b->buf, b->cap);
        free(b->buf);
    }
    b->buf = nb;
    b->cap = cap;
    return 0;
}

static void put8(vici_builder *b, uint8_t v)
{
    if (reserve(b, 1) == 0)
        b->buf[b->len++] = v;
}

static void put_bytes(vici_builder *b, const void *p, size_t n)
{
    if (n && reserve(b, n) == 0) {
        memcpy(b->buf + b->len, p, n);
        b->len += n;
    }
}

static void put_name(vici_builder *b, const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 255) {
        if (!b->err)
            b->err = QK_EINVAL;
        return;
    }
    put8(b, (uint8_t)n);
    put_bytes(b, name, n);
}

static void put_value(vici_builder *b, const void *v, size_t n)
{
    if (n > 65535 || (n && !v)) {
        if (!b->err)
            b->err = QK_EINVAL;
        return;
    }
    put8(b, (uint8_t)(n >> 8));
    put8(b, (uint8_t)(n & 0xff));
    put_bytes(b, v, n);
}

/* Elements other than LIST_ITEM and LIST_END are not allowed inside an open list. */
static bool outside_list(vici_builder *b)
{
    if (b->in_list && !b->err)
        b->err = QK_EINVAL;
    return !b->err;
}

void vici_section_start(vici_builder *b, const char *name)
{
    if (!outside_list(b))
        return;
    if (b->depth >= VICI_MAX_DEPTH) {
        b->err = QK_ELIMIT;
        return;
    }
    put8(b, VICI_SECTION_START);
    put_name(b, name);
    b->depth++;
}

void vici_section_end(vici_builder *b)
{
    if (!outside_list(b))
        return;
    if (b->depth == 0) {
        b->err = QK_EINVAL;
        return;
    }
    put8(b, VICI_SECTION_END);
    b->depth--;
}

void vici_kv(vici_builder *b, const char *name, const void *value, size_t len)
{
    if (!outside_list(b))
        return;
    put8(b, VICI_KEY_VALUE);
    put_name(b, name);
    put_value(b, value, len);
}

void vici_kv_str(vici_builder *b, const char *name, const char *value)
{
    vici_kv(b, name, value, value ? strlen(value) : 0);
}

void vici_kv_u64(vici_builder *b, const char *name, uint64_t v)
{
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    vici_kv_str(b, name, tmp);
}

void vici_list_start(vici_builder *b, const char *name)
{
    if (!outside_list(b))
        return;
    put8(b, VICI_LIST_START);
    put_name(b, name);
    b->in_list = true;
}

void vici_list_item(vici_builder *b, const void *value, size_t len)
{
    if (!b->in_list) {
        if (!b->err)
            b->err = QK_EINVAL;
        return;
    }
    put8(b, VICI_LIST_ITEM);
    put_value(b, value, len);
}

void vici_list_item_str(vici_builder *b, const char *value)
{
    vici_list_item(b, value, value ? strlen(value) : 0);
}

void vici_list_end(vici_builder *b)
{
    if (!b->in_list) {
        if (!b->err)
            b->err = QK_EINVAL;
        return;
    }
    put8(b, VICI_LIST_END);
    b->in_list = false;
}

int vici_builder_finish(vici_builder *b, qk_err *err)
{
    if (!b->err && (b->depth != 0 || b->in_list))
        b->err = QK_EINVAL;
    if (b->err)
        return qk_err_set(err, b->err, "vici: cannot build message (%s)", qk_status_name(b->err));
    return 0;
}

/* ---- parser ------------------------------------------------------------------------------- */

typedef struct {
    const uint8_t *p;
    size_t len, off;
    size_t nodes;
    qk_err *err;
} parser;

static vici_node *new_node(parser *ps, vici_node_type t)
{
    if (ps->nodes >= VICI_MAX_NODES) {
        qk_err_set(ps->err, QK_ELIMIT, "vici: message has more than %d elements", VICI_MAX_NODES);
        return NULL;
    }
    vici_node *n = calloc(1, sizeof *n);
    if (!n) {
        qk_err_set(ps->err, QK_ENOMEM, "vici: out of memory");
        return NULL;
    }
    ps->nodes++;
    n->type = t;
    return n;
}

static int get_name(parser *ps, char out[256])
{
    if (ps->off >= ps->len)
        return qk_err_set(ps->err, QK_EINVAL, "vici: truncated name at offset %zu", ps->off);
    size_t n = ps->p[ps->off++];
    if (n == 0 || n > ps->len - ps->off)
        return qk_err_set(ps->err, QK_EINVAL, "vici: bad name length at offset %zu", ps->off);
    memcpy(out, ps->p + ps->off, n);
    out[n] = '\0';
    if (memchr(out, '\0', n))
        return qk_err_set(ps->err, QK_EINVAL, "vici: NUL byte in a name");
    ps->off += n;
    return 0;
}

static int get_value(parser *ps, vici_node *n)
{
    if (ps->len - ps->off < 2)
        return qk_err_set(ps->err, QK_EINVAL, "vici: truncated value length");
    size_t vl = ((size_t)ps->p[ps->off] << 8) | ps->p[ps->off + 1];
    ps->off += 2;
    if (vl > ps->len - ps->off)
        return qk_err_set(ps->err, QK_EINVAL, "vici: value runs past the message end");
    n->value = malloc(vl + 1);
    if (!n->value)
        return qk_err_set(ps->err, QK_ENOMEM, "vici: out of memory");
    memcpy(n->value, ps->p + ps->off, vl);
    n->value[vl] = '\0';
    n->value_len = vl;
    ps->off += vl;
    return 0;
}

/* Appends child to parent's child list (tail kept by the caller). */
static void append(vici_node *parent, vici_node **tail, vici_node *child)
{
    if (*tail)
        (*tail)->next = child;
    else
        parent->child = child;
    *tail = child;
}

vici_node *vici_parse(const uint8_t *msg, size_t len, qk_err *err)
{
    parser ps = {.p = msg, .len = len, .err = err};
    if (len > VICI_MAX_MSG) {
        qk_err_set(err, QK_ELIMIT, "vici: message of %zu octets is too large", len);
        return NULL;
    }
    vici_node *root = new_node(&ps, VICI_N_SECTION);
    if (!root)
        return NULL;
    vici_node *stack[VICI_MAX_DEPTH + 1];
    vici_node *tails[VICI_MAX_DEPTH + 1];
    int depth = 0;
    stack[0] = root;
    tails[0] = NULL;
    vici_node *list = NULL, *list_tail = NULL;

    while (ps.off < ps.len) {
        uint8_t t = ps.p[ps.off++];
        vici_node *n = NULL;
        if (list && t != VICI_LIST_ITEM && t != VICI_LIST_END) {
            qk_err_set(err, QK_EINVAL, "vici: element type %u inside a list", t);
            goto fail;
        }
        switch (t) {
        case VICI_SECTION_START:
            if (depth >= VICI_MAX_DEPTH) {
                qk_err_set(err, QK_ELIMIT, "vici: sections nested deeper than %d", VICI_MAX_DEPTH);
                goto fail;
            }
            if (!(n = new_node(&ps, VICI_N_SECTION)))
                goto fail;
            append(stack[depth], &tails[depth], n);
            if (get_name(&ps, n->name))
                goto fail;
            depth++;
            stack[depth] = n;
            tails[depth] = NULL;
            break;
        case VICI_SECTION_END:
            if (depth == 0) {
                qk_err_set(err, QK_EINVAL, "vici: SECTION_END without a section");
                goto fail;
            }
            depth--;
            break;
        case VICI_KEY_VALUE:
            if (!(n = new_node(&ps, VICI_N_KV)))
                goto fail;
            append(stack[depth], &tails[depth], n);
            if (get_name(&ps, n->name) || get_value(&ps, n))
                goto fail;
            break;
        case VICI_LIST_START:
            if (!(n = new_node(&ps, VICI_N_LIST)))
                goto fail;
            append(stack[depth], &tails[depth], n);
            if (get_name(&ps, n->name))
                goto fail;
            list = n;
            list_tail = NULL;
            break;
        case VICI_LIST_ITEM:
            if (!list) {
                qk_err_set(err, QK_EINVAL, "vici: LIST_ITEM outside a list");
                goto fail;
            }
            if (!(n = new_node(&ps, VICI_N_ITEM)))
                goto fail;
            append(list, &list_tail, n);
            if (get_value(&ps, n))
                goto fail;
            break;
        case VICI_LIST_END:
            if (!list) {
                qk_err_set(err, QK_EINVAL, "vici: LIST_END without a list");
                goto fail;
            }
            list = NULL;
            break;
        default:
            qk_err_set(err, QK_EINVAL, "vici: unknown element type %u", t);
            goto fail;
        }
    }
    if (depth != 0 || list) {
        qk_err_set(err, QK_EINVAL, "vici: message ends inside a %s", list ? "list" : "section");
        goto fail;
    }
    return root;
fail:
    vici_tree_free(root);
    return NULL;
}

void vici_tree_free(vici_node *root)
{
    /* Iterative: splice children into the sibling chain so the depth of recursion is bounded. */
    vici_node *n = root;
    while (n) {
        if (n->child) {
            vici_node *last = n->child;
            while (last->next)
                last = last->next;
            last->next = n->next;
            n->next = n->child;
            n->child = NULL;
        }
        vici_node *next = n->next;
        if (n->value) {
            qk_wipe(n->value, n->value_len + 1);
            free(n->value);
        }
        free(n);
        n = next;
    }
}

const vici_node *vici_child(const vici_node *sec, const char *name, vici_node_type type)
{
    if (!sec)
        return NULL;
    for (const vici_node *c = sec->child; c; c = c->next)
        if (c->type == type && strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

const char *vici_get_str(const vici_node *sec, const char *name)
{
    const vici_node *kv = vici_child(sec, name, VICI_N_KV);
    if (!kv || memchr(kv->value, '\0', kv->value_len))
        return NULL;
    return (const char *)kv->value;
}

bool vici_success(const vici_node *root)
{
    const char *s = vici_get_str(root, "success");
    return s && strcmp(s, "yes") == 0;
}

void vici_printable(const uint8_t *v, size_t len, char *out, size_t cap)
{
    if (cap == 0)
        return;
    size_t i = 0;
    for (; i < len && i + 1 < cap; i++)
        out[i] = (v[i] >= 0x20 && v[i] < 0x7f) ? (char)v[i] : '?';
    out[i] = '\0';
}

void vici_errmsg(const vici_node *root, char *out, size_t cap)
{
    const vici_node *kv = vici_child(root, "errmsg", VICI_N_KV);
    if (!kv) {
        if (cap)
            out[0] = '\0';
        return;
    }
    vici_printable(kv->value, kv->value_len, out, cap);
}
