/* kmed_config.h - the qkd-kmed configuration (docs/qkd-kmed.md): INI schema, typed values and
 * the cross-checks run after loading. Errors read "FILE:LINE: [section] key: message". */
#ifndef QK_KMED_CONFIG_H
#define QK_KMED_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "qk_err.h"
#include "log.h"
#include "store.h"
#include "tls_server.h"
#include "cert_role.h"

#define QK_CFG_ID_MAX           64   /* node, peer and SAE IDs: 1..64 chars [A-Za-z0-9_.-] */
#define QK_CFG_PATH_MAX         1024 /* file names (resolved against the config file's folder) */
#define QK_CFG_URL_MAX          512
#define QK_CFG_HOST_MAX         64
#define QK_CFG_MAX_LINKS        32
#define QK_CFG_MAX_SAES         1024
#define QK_CFG_GLOBS_MAX        1024 /* a SKIP glob list: comma-separated, normalised ", " -> "," */
#define QK_CFG_MAX_SKIP_CLIENTS 256
#define QK_CFG_ALGORITHM_MAX    64
#define QK_CFG_MAX_BODY_MIN     256u /* [listener] max_body range */
#define QK_CFG_MAX_BODY_MAX     (64u * 1024u * 1024u)

typedef enum {
    QK_LST_ETSI014 = 0,
    QK_LST_SKIP,
    QK_LST_PEER,
    QK_LST_DEVICE,
    QK_LST_ADMIN,
    QK_LST_COUNT
} qk_listener_kind;

/* "etsi014", "skip", "peer", "device", "admin". */
const char *qk_listener_kind_name(qk_listener_kind k);

typedef struct {
    bool present;
    char host[QK_CFG_HOST_MAX];
    uint16_t port;
    bool address_set;
    qk_tls_mode mode;
    bool mode_set;
    char cert[QK_CFG_PATH_MAX];
    char key[QK_CFG_PATH_MAX];
    char ca[QK_CFG_PATH_MAX];
    char psk_file[QK_CFG_PATH_MAX];
    qk_psk_hash psk_hash; /* TLS 1.3 hash of PSK lines naming none (default sha384) */
    char fingerprint_map[QK_CFG_PATH_MAX];
    unsigned max_connections;              /* default 1024 */
    unsigned handshake_timeout_ms;         /* default 10 s */
    unsigned idle_timeout_s;               /* default 60 s */
    unsigned header_timeout_ms;            /* handshake + request headers, total; default 10 s */
    unsigned body_timeout_ms;              /* request body, total; default 60 s */
    unsigned max_pending_per_source;       /* 0: min(256, 3/4 of max_connections) */
    unsigned max_connections_per_identity; /* 0: max_connections / 2 */
    unsigned threads;                      /* default 2 */
    uint32_t max_body;                     /* request body limit in bytes; default per listener */
    /* A client certificate without a role marker (docs/qkd-kmed.md "Roles"): refused
     * (required: the peer and device listeners' default) or accepted (optional: etsi014 and
     * skip, for SAEs with their own PKI). A marker for another role is always refused. */
    qk_role_marker role_marker;
} qk_listener_cfg;

/* Where a link's key blocks come from (docs/qkd-kmed.md, "Key sources"). */
typedef enum {
    QK_SOURCE_DEVICE = 0, /* pushed to /device/v1 by the device or simulator (default) */
    QK_SOURCE_ETSI014,    /* pulled from the device's own ETSI GS QKD 014 interface */
} qk_link_source;

typedef struct {
    char peer[QK_CFG_ID_MAX + 1];          /* the peer KME's node ID (section name) */
    char peer_url[QK_CFG_URL_MAX];         /* https://HOST:PORT of the peer's peer listener */
    char link_id[QK_STORE_ID_MAX + 1];     /* default: both node IDs sorted, joined by "~" */
    char device_identity[QK_IDENTITY_MAX]; /* client-certificate CN allowed to push blocks */
    uint64_t max_pool_bytes;    /* pool cap (qk_store_block_put_capped); default [keys] */
    uint64_t telemetry_stale_s; /* no device report for longer: the link reads as down */
    uint64_t pending_grace_s;   /* a PENDING block the peer still lacks after this is burned */
    /* source = etsi014: the device's ETSI 014 API (kms/device_source.h) */
    qk_link_source source;
    char device_url[QK_CFG_URL_MAX];         /* https://HOST:PORT (no trailing path) */
    char device_ca[QK_CFG_PATH_MAX];         /* CA of the device's server certificate */
    char device_cert[QK_CFG_PATH_MAX];       /* this KME's client certificate there */
    char device_key[QK_CFG_PATH_MAX];        /* its key */
    char device_sae[QK_CFG_ID_MAX + 1];      /* this KME's SAE ID at its device */
    char device_peer_sae[QK_CFG_ID_MAX + 1]; /* the peer KME's SAE ID at its device */
    bool device_pull;                        /* this end pulls (enc_keys); default no */
    uint32_t device_key_size;                /* bits per key asked; default 256 */
    uint32_t device_batch;                   /* keys per enc_keys; default 64 */
    uint64_t device_interval_ms;             /* pause between pulls; default 500 ms */
    uint64_t device_target_bytes;            /* no pull at or above; default max_pool_bytes/2 */
} qk_link_cfg;

typedef struct {
    char id[QK_CFG_ID_MAX + 1];
    char kme[QK_CFG_ID_MAX + 1];
    bool has_fingerprint;
    uint8_t fingerprint[32];
} qk_sae_cfg;

typedef struct {
    bool present;
    char ca[QK_CFG_PATH_MAX];
    char cert[QK_CFG_PATH_MAX];
    char key[QK_CFG_PATH_MAX];
    uint64_t timeout_ms;         /* default 3 s */
    uint64_t connect_timeout_ms; /* default 1 s */
} qk_peer_client_cfg;

/* [skip_client NAME]: what the SKIP client NAME (PSK identity or certificate CN) may ask for. */
typedef struct {
    char identity[QK_IDENTITY_MAX];
    char remote_systems[QK_CFG_GLOBS_MAX]; /* glob list, required */
} qk_skip_client_cfg;

/* [skip]: the SKIP API (skip-server/README.md). */
typedef struct {
    bool present;
    char remote_system_ids[QK_CFG_GLOBS_MAX]; /* glob list; required with [listener skip] */
    bool loopback_pair;                       /* test aid, default false */
    char algorithm[QK_CFG_ALGORITHM_MAX + 1]; /* default "QKD" */
    bool entropy;                             /* default true */
    uint32_t max_entropy_bits;                /* default 8192 */
    char default_client_remote_systems[QK_CFG_GLOBS_MAX]; /* default "" (refused) */
    qk_skip_client_cfg clients[QK_CFG_MAX_SKIP_CLIENTS];
    size_t nclients;
} qk_skip_cfg;

#define QK_CFG_MAX_TOPO_LINKS 256 /* = QK_ROUTE_LINKS_MAX */

/* [topology]: links between other KMEs, known before any report arrives. */
typedef struct {
    size_t nlinks;
    struct {
        char a[QK_CFG_ID_MAX + 1], b[QK_CFG_ID_MAX + 1]; /* "link = KME_B KME_C" (repeatable) */
    } links[QK_CFG_MAX_TOPO_LINKS];
    uint64_t interval_ms;  /* interval: GET /peer/v1/topology of each neighbour; default 2 s */
    uint64_t hold_down_ms; /* hold_down: a link a relay failed on stays down; default 5 s */
} qk_topology_cfg;

/* [relay]: relayed requests (the master KME's side). */
typedef struct {
    bool enabled;        /* enabled: default yes (no: slaves at non-neighbours are unknown) */
    uint64_t timeout_ms; /* timeout: a relay's deadline from its start, retries included; 5 s */
    uint32_t max_hops;   /* max_hops: 1..15, default 8 */
    uint32_t max_tries;  /* max_tries: paths tried per request (retry on another path); 3 */
} qk_relay_cfg;

typedef struct {
    char path[QK_CFG_PATH_MAX]; /* the file this came from */

    char node_id[QK_CFG_ID_MAX + 1];
    char data_dir[QK_CFG_PATH_MAX];
    char master_key_file[QK_CFG_PATH_MAX]; /* "" = use QKD_KMED_MASTER_KEY */
    char log_file[QK_CFG_PATH_MAX];        /* "-" = stderr */
    qk_log_level log_level;

    qk_listener_cfg listeners[QK_LST_COUNT];
    qk_peer_client_cfg peer_client;

    qk_link_cfg links[QK_CFG_MAX_LINKS];
    size_t nlinks;
    qk_sae_cfg saes[QK_CFG_MAX_SAES];
    size_t nsaes;

    /* [keys] */
    uint32_t default_size_bits;      /* 256 */
    uint32_t min_size_bits;          /* 64 */
    uint32_t max_size_bits;          /* 8192 */
    uint32_t max_keys_per_request;   /* 128 */
    uint64_t max_key_count;          /* 100000 */
    uint32_t max_sae_id_count;       /* 4 */
    uint64_t reservation_lifetime_s; /* 3600 */
    uint64_t local_block_bytes;      /* 65536 */
    uint64_t max_pool_bytes;         /* 64 MiB: each link's default pool cap */

    /* [hot_path]: leases and notices (docs/qkd-kmed.md "How the KME uses its peers") */
    uint32_t lease_bytes;     /* bytes asked per lease: 262144 */
    uint32_t lease_low_water; /* lease ahead below this much granted room: 65536 */
    uint32_t lease_demand_ms; /* a lease asks at least this long's recent demand: 500 */
    uint32_t notice_batch;    /* requests per POST /peer/v1/notices: 256 */
    uint64_t notice_wait_ms;  /* a fetch of a not yet noticed key waits this long: 2000 */
    bool reply_at_commit;     /* answer carves at their COMMIT (store.h): false */

    /* [store] */
    bool store_shared;   /* lock = shared: other processes may read store.db (store.h): false */
    bool store_time_ids; /* key_ids = time-ordered: version-7 run IDs (store.h): false */

    qk_skip_cfg skip;

    /* [topology] and [relay]: the network beyond this KME's links, for trusted-node key relay
     * (docs/adr/0004-key-relay.md; docs/qkd-kmed.md "Relay and routing"). */
    qk_topology_cfg topology;
    qk_relay_cfg relay;
} qk_kmed_config;

/* Load and cross-check FILE into *cfg (which is fully overwritten; it is large: allocate it,
 * e.g. with malloc). Returns 0, QK_EIO (cannot read) or QK_EINVAL; err->msg is one line
 * "FILE:LINE: [section] key: message". */
int qk_kmed_config_load(const char *path, qk_kmed_config *cfg, qk_err *err);

/* [link PEER] telemetry_stale: a link whose device sent no telemetry for longer reads as down
 * (/metrics). Default five times the simulator's default telemetry_interval (1 s). */
#define QK_CFG_DEFAULT_TELEMETRY_STALE_S 5
/* [link PEER] pending_grace: a PENDING block whose twin the peer still does not hold this long
 * after it arrived here is burned at the peer's "unknown" (peer/sync.h). Longer than the worst
 * delivery skew between the two ends: the simulator's 3 attempts of 3 s at one end, or a peer
 * device-keys call (3 s) around the peer's own device fetch (3 s). */
#define QK_CFG_DEFAULT_PENDING_GRACE_S 20
/* The pool cap of every link unless [link PEER] max_pool_bytes sets its own: 64 MiB. */
#define QK_CFG_DEFAULT_MAX_POOL_BYTES (64ull << 20)
#define QK_CFG_MIN_POOL_BYTES         4096ull
#define QK_CFG_MAX_POOL_BYTES         (1ull << 50)

/* [hot_path] defaults and bounds. */
#define QK_CFG_DEFAULT_LEASE_BYTES     262144u
#define QK_CFG_DEFAULT_LEASE_LOW_WATER 65536u
#define QK_CFG_DEFAULT_LEASE_DEMAND_MS 500u
#define QK_CFG_LEASE_DEMAND_MS_MAX     10000u
#define QK_CFG_DEFAULT_NOTICE_BATCH    256u
#define QK_CFG_NOTICE_BATCH_MAX        1024u /* = QK_PEER_NOTICES_MAX: what a peer accepts */
#define QK_CFG_DEFAULT_NOTICE_WAIT_MS  2000u

/* [topology] and [relay] defaults and bounds (docs/qkd-kmed.md "Relay and routing"). */
#define QK_CFG_DEFAULT_TOPO_INTERVAL_MS 2000u
#define QK_CFG_TOPO_INTERVAL_MIN_MS     100u
#define QK_CFG_TOPO_INTERVAL_MAX_MS     60000u
#define QK_CFG_DEFAULT_HOLD_DOWN_MS     5000u
#define QK_CFG_HOLD_DOWN_MIN_MS         100u
#define QK_CFG_HOLD_DOWN_MAX_MS         600000u
#define QK_CFG_DEFAULT_RELAY_TIMEOUT_MS 5000u
#define QK_CFG_RELAY_TIMEOUT_MIN_MS     100u
#define QK_CFG_RELAY_TIMEOUT_MAX_MS     300000u
#define QK_CFG_DEFAULT_RELAY_MAX_HOPS   8u
#define QK_CFG_RELAY_MAX_HOPS           15u /* a relay path holds at most 16 nodes */
#define QK_CFG_DEFAULT_RELAY_MAX_TRIES  3u
#define QK_CFG_RELAY_MAX_TRIES          8u

/* [link PEER] device_* defaults (source = etsi014). */
#define QK_CFG_DEFAULT_DEVICE_KEY_SIZE    256
#define QK_CFG_DEFAULT_DEVICE_BATCH       64
#define QK_CFG_DEFAULT_DEVICE_INTERVAL_MS 500
#define QK_CFG_DEVICE_BATCH_MAX           1024 /* = QK_PEER_DEVICE_KEYS_MAX */

/* "device", "etsi014". */
const char *qk_link_source_name(qk_link_source s);

/* Lookups (NULL when absent). */
const qk_link_cfg *qk_kmed_config_link_by_peer(const qk_kmed_config *cfg, const char *peer);
const qk_link_cfg *qk_kmed_config_link_by_id(const qk_kmed_config *cfg, const char *link_id);
const qk_sae_cfg *qk_kmed_config_sae(const qk_kmed_config *cfg, const char *sae_id);

/* The role a listener serves (docs/qkd-kmed.md "Roles"): etsi014 and skip QK_ROLE_SAE, peer
 * QK_ROLE_KME, device QK_ROLE_DEVICE; admin QK_ROLE_NONE (it authenticates no one). */
qk_role qk_listener_role(qk_listener_kind k);

#endif
