/*
 * model.h - what the registry holds: service instances and their checks, as immutable
 * objects, with their JSON forms (internal to src/registry).
 *
 * An instance (Consul's "service" in agent terms: one registration, with an ID) carries its
 * checks. Instances are immutable once built: the control loop never changes one that a
 * snapshot may hold; a change (a check's status, maintenance) builds a new instance with
 * weft__inst_clone and replaces it. Instances are snapshot objects (core/snapshot.h:
 * weft_snap_alloc, reference-counted), so that a catalog snapshot and the next one share
 * every instance that did not change.
 *
 * JSON in: weft__inst_decode and weft__check_decode read Consul's registration bodies (keys
 * matched without regard to case or underscores: "ServiceID", "service_id" and "serviceid"
 * are one key), validate them, and name the field in a message when something is wrong.
 * The same functions read the store's records back (a record is the registration plus the
 * state the catalog keeps: status, output, indexes).
 * JSON out: the shapes Consul's API answers with (encode.c), and the store's record.
 */
#ifndef WEFT_REGISTRY_MODEL_H
#define WEFT_REGISTRY_MODEL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "registry/status.h"

/* Limits on what one registration may hold (400 past them). */
#define REG_MAX_ID      256 /* bytes of an ID or a name */
#define REG_MAX_STR     4096
#define REG_MAX_TAGS    64
#define REG_MAX_META    64
#define REG_MAX_CHECKS  32
#define REG_MAX_HEADERS 32
#define REG_MAX_OUTPUT  4096
#define REG_HIST        8 /* transitions kept per check */

typedef struct reg_kv_s {
    char *k, *v;
} reg_kv_t;

typedef enum reg_check_type_e {
    REG_CHECK_TTL = 1,
    REG_CHECK_HTTP = 2,
    REG_CHECK_TCP = 3,
    REG_CHECK_MAINT = 4, /* the check maintenance mode adds ("_service_maintenance:ID") */
    REG_CHECK_NONE = 5   /* registered with no way to run it (Consul allows a check with only
                            a status: it keeps the status it is given) */
} reg_check_type_t;

typedef struct reg_hist_s {
    uint64_t at_ms; /* wall clock */
    uint8_t from, to;
} reg_hist_t;

typedef struct reg_check_s {
    char *id, *name, *notes, *output;
    char *service_id, *service_name; /* "" for a node check */
    reg_check_type_t type;
    char *http, *method, *body, *tcp; /* "" when absent */
    reg_kv_t *headers;
    uint32_t nheaders;
    uint64_t interval_ms, timeout_ms, ttl_ms, dereg_ms;
    uint32_t sbp, fbw, fbc; /* SuccessBeforePassing, FailuresBeforeWarning/Critical */
    weft_health_t status;
    uint64_t create_index, modify_index;
    uint8_t nhist;
    reg_hist_t hist[REG_HIST]; /* oldest first */
} reg_check_t;

typedef struct reg_inst_s {
    char *id, *name, *address, *kind;
    uint16_t port;
    uint8_t addr_fam; /* 4 or 6 when address is numeric (parsed once, for DNS); else 0 */
    uint8_t addr_bin[16];
    bool eto; /* EnableTagOverride */
    char **tags;
    uint32_t ntags;
    reg_kv_t *meta;
    uint32_t nmeta;
    int w_passing, w_warning; /* Weights */
    uint64_t create_index, modify_index;
    reg_check_t **checks; /* owned */
    uint32_t nchecks;
    weft_health_t health; /* the worst of its checks' (weft__inst_health) */
} reg_inst_t;

/* The node every instance runs on (this weft). */
typedef struct reg_node_s {
    const char *name, *id, *address, *datacenter;
} reg_node_t;

/* Strings of the model are never NULL. The empty ones, most of a check's, all share
 * weft__empty instead of an allocation each: make them with weft__sdup and free them with
 * weft__sfree (which leaves weft__empty alone). */
extern char weft__empty[1];
/* A copy of s (weft__empty for ""), or NULL when out of memory. */
char *weft__sdup(const char *s);
void weft__sfree(char *s);

/* Go's time.ParseDuration to whole milliseconds; see duration.c. Returns 0 or -1. */
int weft__duration_parse(const char *s, size_t n, uint64_t *out_ms);

/* A new, empty instance (a snapshot object with one reference), or NULL. */
reg_inst_t *weft__inst_new(void);
/* A deep copy (one reference), or NULL. */
reg_inst_t *weft__inst_clone(const reg_inst_t *in);
/* Frees a check that no instance owns. */
void weft__check_free(reg_check_t *c);
/* A deep copy, or NULL. */
reg_check_t *weft__check_clone(const reg_check_t *c);
/* Sets addr_fam and addr_bin from address. */
void weft__inst_parse_addr(reg_inst_t *in);
/* Sets inst->health from its checks (and node_health, the worst of the node's checks). */
void weft__inst_health(reg_inst_t *inst, weft_health_t node_health);
/* Adds c to inst (taking it), replacing a check with the same ID. Returns 0 or -1 (full). */
int weft__inst_put_check(reg_inst_t *inst, reg_check_t *c);
/* Removes and frees the check with this ID; returns 0, or -1 if there is none. */
int weft__inst_del_check(reg_inst_t *inst, const char *id);
reg_check_t *weft__inst_find_check(const reg_inst_t *inst, const char *id);
/* Records a transition in c's history (drops the oldest past REG_HIST). */
void weft__check_hist(reg_check_t *c, weft_health_t from, weft_health_t to, uint64_t at_ms);
bool weft__inst_has_tag(const reg_inst_t *inst, const char *tag, size_t n);

/* ---- JSON in (decode.c) ---- */

/* Where a body comes from: the API (defaults applied, state fields ignored) or the store
 * (state fields read: Status, Output, CreateIndex, ModifyIndex, history). */
typedef enum reg_src_e { REG_SRC_API = 0, REG_SRC_STORE = 1 } reg_src_t;

/* A registration body (PUT /v1/agent/service/register) to an instance with its checks.
 * Returns 0 and *out (one reference), or -1 with "Field: what is wrong" in err. */
int weft__inst_decode(json_t *root, reg_src_t src, reg_inst_t **out, char *err, size_t errlen);

/* A check body (PUT /v1/agent/check/register, or one of a registration's Check/Checks).
 * def_id / def_name: the defaults for ID and Name when the body has none (NULL: Name is
 * required and ID defaults to Name). Returns 0 and *out, or -1 with err. */
int weft__check_decode(json_t *root, reg_src_t src, const char *def_id, const char *def_name,
                       reg_check_t **out, char *err, size_t errlen);

/* The member of object o whose key equals name without regard to ASCII case and
 * underscores; NULL if none. */
json_t *weft__json_get(json_t *o, const char *name);

/* ---- JSON out (encode.c) ---- */

/* /v1/agent/services values and /v1/agent/service/:id. */
void weft__put_agent_service(weft_buf_t *b, const reg_node_t *node, const reg_inst_t *in);
/* A check as /v1/agent/checks, /v1/health/checks and health entries show it. inst: the
 * instance it belongs to (NULL for a node check). */
void weft__put_check(weft_buf_t *b, const reg_node_t *node, const reg_check_t *c,
                     const reg_inst_t *inst);
/* The Node object of catalog and health answers. */
void weft__put_node(weft_buf_t *b, const reg_node_t *node, uint64_t create, uint64_t modify);
/* One /v1/catalog/service/:name entry. */
void weft__put_catalog_service(weft_buf_t *b, const reg_node_t *node, const reg_inst_t *in);
/* One /v1/health/service/:name entry: Node, Service, Checks (node checks first). */
void weft__put_health_entry(weft_buf_t *b, const reg_node_t *node, const reg_inst_t *in,
                            reg_check_t *const *node_checks, size_t n_node_checks);
/* The store's record of an instance / of a node check. */
void weft__put_inst_record(weft_buf_t *b, const reg_inst_t *in);
void weft__put_check_record(weft_buf_t *b, const reg_check_t *c);

#endif
