/*
 * assets.h - the dashboard's files as the build embeds them (src/ui/embed/ui_embed.c writes
 * the table into the build tree from ui/; nothing generated is committed).
 */
#ifndef WEFT_UI_ASSETS_H
#define WEFT_UI_ASSETS_H

#include <stddef.h>

typedef struct weft_ui_asset_s {
    const char *name; /* path under ui/: "index.html", "js/app.js" */
    const char *type; /* Content-Type */
    const char *etag; /* strong, quoted: "\"<XXH3-128 hex>\"" of the bytes */
    const unsigned char *data;
    size_t len;
    const unsigned char *gz; /* gzip of data; NULL when it would not be smaller */
    size_t gzlen;
} weft_ui_asset_t;

/* Sorted by name (strcmp), no name twice. */
extern const weft_ui_asset_t weft__ui_assets[];
extern const unsigned weft__ui_nassets;

#endif
