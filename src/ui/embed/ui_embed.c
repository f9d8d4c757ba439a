/*
 * ui_embed.c - the build's tool that turns the dashboard's files (ui/ at the repository's
 * root) into one C source, so that `weft serve` carries them in its binary and serves them
 * without a file system, a CDN or npm.
 *
 *     ui_embed OUT.c ROOT FILE...      FILE: a path under ROOT ("index.html", "js/app.js")
 *
 * For each file OUT.c holds its bytes, its content type (from its extension: a file of an
 * extension not listed below stops the build rather than being served with a guessed type),
 * a strong ETag (XXH3-128 of the bytes, in hex, quoted) and, when it is smaller, a gzip copy
 * (zlib, level 9, no name and no time in its header, so that a build is reproducible). The
 * table is sorted by name for a binary search (src/ui/ui.c).
 *
 * CMake builds this tool for the build machine first and runs it whenever a file under ui/
 * changes (CMakeLists.txt, "The dashboard"); nothing it writes is committed. It is a
 * program that runs once and exits: errors print one line naming the file and exit 1.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#define MAX_FILE (4u << 20) /* a dashboard asset larger than this is a mistake */

typedef struct {
    const char *name;
    unsigned char *data, *gz;
    size_t len, gzlen;
    const char *type;
    char etag[40];
} asset_t;

static const struct {
    const char *ext, *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".json", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".txt", "text/plain; charset=utf-8"},
};

static const char *type_of(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        size_t e = strlen(types[i].ext);
        if (n > e && strcmp(name + n - e, types[i].ext) == 0) return types[i].type;
    }
    return NULL;
}

static int read_file(const char *path, unsigned char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "ui_embed: %s: %s\n", path, strerror(errno));
        return -1;
    }
    unsigned char *p = malloc(MAX_FILE + 1);
    size_t n = p ? fread(p, 1, MAX_FILE + 1, f) : 0;
    int bad = !p || ferror(f) || n > MAX_FILE;
    fclose(f);
    if (bad) {
        fprintf(stderr, "ui_embed: %s: %s\n", path,
                !p             ? "out of memory"
                : n > MAX_FILE ? "larger than 4 MiB"
                               : "read error");
        free(p);
        return -1;
    }
    *out = p;
    *len = n;
    return 0;
}

/* gzip (RFC 1952) of data: windowBits 15 + 16 asks zlib for the gzip wrapper, whose header
 * it writes with mtime 0 and no name. Returns 0, or -1 when zlib fails. */
static int gzip(const unsigned char *data, size_t len, unsigned char **out, size_t *outlen)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK) return -1;
    size_t cap = deflateBound(&z, (uLong)len) + 32;
    unsigned char *p = malloc(cap);
    if (!p) {
        deflateEnd(&z);
        return -1;
    }
    z.next_in = (unsigned char *)data;
    z.avail_in = (uInt)len;
    z.next_out = p;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    *outlen = cap - z.avail_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(p);
        return -1;
    }
    *out = p;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const asset_t *)a)->name, ((const asset_t *)b)->name);
}

static void put_bytes(FILE *o, const char *sym, const unsigned char *p, size_t n)
{
    fprintf(o, "static const unsigned char %s[%zu] = {", sym, n ? n : 1);
    for (size_t i = 0; i < n; i++) fprintf(o, "%s%u,", i % 24 ? "" : "\n    ", p[i]);
    fprintf(o, "%s};\n", n ? "\n" : "0");
}

/* A C string literal of s (names and types are printable ASCII: checked by the caller). */
static void put_str(FILE *o, const char *s)
{
    fputc('"', o);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', o);
        fputc(*s, o);
    }
    fputc('"', o);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: ui_embed OUT.c ROOT FILE...\n");
        return 2;
    }
    const char *outpath = argv[1], *root = argv[2];
    size_t n = (size_t)argc - 3;
    asset_t *a = calloc(n, sizeof(*a));
    if (!a) return 1;
    int rc = 1;
    for (size_t i = 0; i < n; i++) {
        const char *name = argv[3 + i];
        a[i].name = name;
        for (const char *c = name; *c; c++)
            if (*c < 0x21 || *c > 0x7e || *c == '"' || *c == '\\' || *c == '?' || *c == '#') {
                fprintf(stderr,
                        "ui_embed: %s: a name must be printable ASCII without quotes, "
                        "'?' or '#'\n",
                        name);
                goto out;
            }
        if (name[0] == '/' || strstr(name, "..")) {
            fprintf(stderr, "ui_embed: %s: must be a relative path under %s\n", name, root);
            goto out;
        }
        if (!(a[i].type = type_of(name))) {
            fprintf(stderr,
                    "ui_embed: %s: unknown file type (add its extension to "
                    "src/ui/embed/ui_embed.c)\n",
                    name);
            goto out;
        }
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", root, name);
        if (read_file(path, &a[i].data, &a[i].len) != 0) goto out;
        XXH128_hash_t h = XXH3_128bits(a[i].data, a[i].len);
        snprintf(a[i].etag, sizeof(a[i].etag), "\"%016llx%016llx\"", (unsigned long long)h.high64,
                 (unsigned long long)h.low64);
        if (gzip(a[i].data, a[i].len, &a[i].gz, &a[i].gzlen) != 0) {
            fprintf(stderr, "ui_embed: %s: zlib failed\n", name);
            goto out;
        }
        if (a[i].gzlen >= a[i].len) { /* no gain: the file is served as it is */
            free(a[i].gz);
            a[i].gz = NULL;
            a[i].gzlen = 0;
        }
    }
    qsort(a, n, sizeof(*a), by_name);
    for (size_t i = 1; i < n; i++)
        if (strcmp(a[i - 1].name, a[i].name) == 0) {
            fprintf(stderr, "ui_embed: %s: named twice\n", a[i].name);
            goto out;
        }
    FILE *o = fopen(outpath, "w");
    if (!o) {
        fprintf(stderr, "ui_embed: %s: %s\n", outpath, strerror(errno));
        goto out;
    }
    fprintf(o, "/* Generated by src/ui/embed/ui_embed.c from ui/: do not edit. */\n"
               "#include \"ui/assets.h\"\n\n");
    for (size_t i = 0; i < n; i++) {
        char sym[32];
        snprintf(sym, sizeof(sym), "a%zu", i);
        put_bytes(o, sym, a[i].data, a[i].len);
        if (a[i].gz) {
            snprintf(sym, sizeof(sym), "a%zu_gz", i);
            put_bytes(o, sym, a[i].gz, a[i].gzlen);
        }
    }
    fprintf(o, "\nconst weft_ui_asset_t weft__ui_assets[] = {\n");
    for (size_t i = 0; i < n; i++) {
        fprintf(o, "    {");
        put_str(o, a[i].name);
        fprintf(o, ", ");
        put_str(o, a[i].type);
        fprintf(o, ", ");
        put_str(o, a[i].etag);
        fprintf(o, ", a%zu, %zu, ", i, a[i].len);
        if (a[i].gz)
            fprintf(o, "a%zu_gz, %zu},\n", i, a[i].gzlen);
        else
            fprintf(o, "0, 0},\n");
    }
    fprintf(o, "};\nconst unsigned weft__ui_nassets = %zu;\n", n);
    if (fclose(o) != 0) {
        fprintf(stderr, "ui_embed: %s: write error\n", outpath);
        remove(outpath);
        goto out;
    }
    rc = 0;
out:
    for (size_t i = 0; i < n; i++) {
        free(a[i].data);
        free(a[i].gz);
    }
    free(a);
    return rc;
}
