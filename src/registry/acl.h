/*
 * acl.h - the ACL token check shared by the registry's API and the gateway's admin API
 * (internal).
 */
#ifndef WEFT_REGISTRY_ACL_H
#define WEFT_REGISTRY_ACL_H

#include <stdbool.h>

#include "weft/http.h"

/* Whether req may write: true when want (acl.token) is NULL or empty, or when the request
 * carries it in X-Consul-Token, Authorization: Bearer, or ?token= (percent-decoded). */
bool weft__acl_ok(weft_http_request_t *req, const char *want);

#endif
