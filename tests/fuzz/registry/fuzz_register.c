/*
 * fuzz_register.c - arbitrary bytes as a registration body (PUT /v1/agent/service/register),
 * and, when the first byte is '#', the rest as a check body (PUT /v1/agent/check/register).
 *
 * Checks beyond "no crash, no leak, no sanitizer report": a refusal always says which field
 * ("Field: what", a message that is never empty and never spans lines); an accepted body
 * has its limits (ports, counts, lengths) and its store record reads back, as the store
 * does at start-up, to the very same record.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/snapshot.h"
#include "registry/model.h"

static void check_err(const char *err)
{
    if (!err[0] || strchr(err, '\n') || !strstr(err, ":")) {
        fprintf(stderr, "bad message: \"%s\"\n", err);
        abort();
    }
}

static void roundtrip_inst(const reg_inst_t *in)
{
    weft_buf_t b, b2;
    weft_buf_init(&b, 0);
    weft_buf_init(&b2, 0);
    weft__put_inst_record(&b, in);
    json_error_t je;
    json_t *root = json_loadb(b.p, b.len, 0, &je);
    if (!root) {
        fprintf(stderr, "record is not JSON: %s\n%s\n", je.text, b.p);
        abort();
    }
    char err[512];
    reg_inst_t *back;
    if (weft__inst_decode(root, REG_SRC_STORE, &back, err, sizeof(err)) != 0) {
        fprintf(stderr, "record refused: %s\n%s\n", err, b.p);
        abort();
    }
    weft__put_inst_record(&b2, back);
    if (b.len != b2.len || memcmp(b.p, b2.p, b.len) != 0) {
        fprintf(stderr, "record changed:\n%s\n%s\n", b.p, b2.p);
        abort();
    }
    json_decref(root);
    weft_snap_release(back);
    weft_buf_free(&b);
    weft_buf_free(&b2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int registered;
    if (!registered) {
        weft_snap_thread_register();
        registered = 1;
    }
    bool check = size > 0 && data[0] == '#';
    json_error_t je;
    json_t *root = json_loadb((const char *)data + check, size - check, 0, &je);
    if (!root) return 0;
    char err[512] = "";
    if (check) {
        reg_check_t *k;
        if (weft__check_decode(root, REG_SRC_API, NULL, NULL, &k, err, sizeof(err)) == 0) {
            if (!k->id[0] || !k->name[0] || (k->type == REG_CHECK_HTTP && !k->interval_ms)) abort();
            weft__check_free(k);
        } else {
            check_err(err);
        }
    } else {
        reg_inst_t *in;
        if (weft__inst_decode(root, REG_SRC_API, &in, err, sizeof(err)) == 0) {
            if (!in->id[0] || !in->name[0] || in->ntags > REG_MAX_TAGS ||
                in->nchecks > REG_MAX_CHECKS || in->w_passing < 1)
                abort();
            for (uint32_t i = 0; i < in->nchecks; i++)
                if (strcmp(in->checks[i]->service_id, in->id) != 0) abort();
            roundtrip_inst(in);
            weft_snap_release(in);
        } else {
            check_err(err);
        }
    }
    json_decref(root);
    return 0;
}
