/**
 * weft/weft.h - the umbrella header of libweft: include this one.
 */
#ifndef WEFT_WEFT_H
#define WEFT_WEFT_H

#include "weft/common.h"
#include "weft/log.h"
#include "weft/config.h"
#include "weft/workers.h"
#include "weft/router.h"
#include "weft/http.h"
#include "weft/host.h"
#include "weft/client.h"
#include "weft/discovery.h"
#include "weft/metrics.h"
#include "weft/trace.h"
#include "weft/service.h"
#include "weft/otlp.h"
#include "weft/breaker.h"
#include "weft/ratelimit.h"
#include "weft/balance.h"

#define WEFT_VERSION "0.1.0"

#endif
