/* cert_role.h - the role an identity may act in, and the role marker a certificate carries.
 *
 * Every identity of the project acts in exactly one role (docs/qkd-kmed.md, "Roles"): an SAE
 * (the ETSI 014 and SKIP listeners), a peer KME (the peer listener), a QKD device (the device
 * listener) or a bridge (qkd-bridge's bridge channel). A certificate names its role in a
 * subjectAltName uniformResourceIdentifier (RFC 5280 section 4.2.1.6) of the form
 * "urn:qkd-kms:role:ROLE" (RFC 8141 URN syntax; the namespace is not registered, only this
 * project reads it), ROLE one of sae, kme, device, bridge. The
 * TLS front end reads the marker of the client certificate into qk_peer_identity.role; each
 * zone's handler then calls qk_role_check with the one role its listener serves, so a
 * certificate marked for another role is refused by every other listener, whatever its CN.
 *
 * A marker in the SAN, rather than a private extendedKeyUsage purpose (RFC 5280 section
 * 4.2.1.12), needs no OID under an arc the project owns; the SAN URI is readable with any
 * X.509 tool. */
#ifndef QK_CERT_ROLE_H
#define QK_CERT_ROLE_H

#include <stdbool.h>
#include <stddef.h>

#define QK_ROLE_URI_PREFIX "urn:qkd-kms:role:"

typedef enum {
    QK_ROLE_NONE = 0, /* the certificate carries no role marker (or the caller used a PSK) */
    QK_ROLE_SAE,      /* a secure application entity: ETSI 014, SKIP */
    QK_ROLE_KME,      /* a peer KME: the peer listener */
    QK_ROLE_DEVICE,   /* the QKD device (or simulator) of a link: the device listener */
    QK_ROLE_BRIDGE,   /* a qkd-bridge: the bridge channel */
    QK_ROLE_INVALID   /* an unknown role word, or markers for more than one role */
} qk_role;

/* What a listener does with a certificate without any marker (a marker for another role is
 * refused in either case). REQUIRED is the zero value: the safe default. */
typedef enum {
    QK_ROLE_MARKER_REQUIRED = 0, /* refuse an unmarked certificate */
    QK_ROLE_MARKER_OPTIONAL      /* accept it: outside clients with their own PKI */
} qk_role_marker;

/* "sae", "kme", "device", "bridge"; "none" and "invalid" for the other two. */
const char *qk_role_name(qk_role r);
/* A role word (exact, lower case) -> QK_ROLE_SAE..QK_ROLE_BRIDGE; QK_ROLE_INVALID otherwise. */
qk_role qk_role_parse(const char *word, size_t len);

/* "required", "optional"; parse: 0, or -1 for any other word. */
const char *qk_role_marker_name(qk_role_marker m);
int qk_role_marker_parse(const char *s, qk_role_marker *out);

/* Fold one SAN URI of a certificate into the marker found so far (start with QK_ROLE_NONE):
 * URIs without the prefix are ignored; a second marker for another role, or an unknown role
 * word, gives QK_ROLE_INVALID. The TLS front end calls it for every URI of the certificate. */
qk_role qk_role_fold_uri(qk_role so_far, const char *uri, size_t len);

/* May a caller whose certificate carries `marker` (is_cert false: a PSK identity, which has
 * no certificate and whose role the listener's PSK file gives) act in role `want` at a
 * listener with policy m? true, or false with *why set to a static sentence for the log and
 * the answer. */
bool qk_role_allows(bool is_cert, qk_role marker, qk_role want, qk_role_marker m, const char **why);

#endif
