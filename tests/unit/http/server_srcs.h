/*
 * server_srcs.h - the HTTP server engine's sources, for a test that compiles them into
 * itself to reach their internals (conn_t, listener_t, statics), or to route their
 * allocations through fault_alloc.h: include it between fault_alloc_begin.h and
 * fault_alloc_end.h for that. Every file of the engine is here, so that none of them is also
 * linked from the library (syntax.c allocates nothing and is linked).
 */
#include "../../../src/http/conn.c"
#include "../../../src/http/exchange.c"
#include "../../../src/http/listener.c"
#include "../../../src/http/parse.c"
#include "../../../src/http/request.c"
#include "../../../src/http/response.c"
