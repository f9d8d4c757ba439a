/*
 * config_doc.c - the declaration tables as text for people: `--help` and the Markdown
 * reference (docs/config.md is generated from it by `weft config-docs`).
 *
 * Both are printed straight from the tables, so an option cannot be documented with a
 * different default, range or variable than the one the loader applies. Defaults are
 * shown as the table writes them (the file's syntax); ranges are printed in the option's
 * units ("100ms..1h", "1KiB..1MiB"). Markdown cells escape '|' so help text cannot break
 * the table. A list/map (WEFT_CONF_TREE) option gets one row like any other; what goes
 * under it is documented where its help points (a section of the module's docs).
 *
 * Writes to the caller's FILE; allocates nothing; any thread.
 */
#include <string.h>

#include "core/config_int.h"

static const struct {
    weft_conf_type_t type;
    const char *syntax;
} syntaxes[] = {
    {WEFT_CONF_BOOL, "`true` or `false` (also `yes`/`no`, `on`/`off`, `1`/`0`)"},
    {WEFT_CONF_INT, "a whole number, e.g. `-5`, `42`"},
    {WEFT_CONF_UINT, "a whole number from 0, e.g. `42`"},
    {WEFT_CONF_DOUBLE, "a decimal number, e.g. `0.25`, `1e3`"},
    {WEFT_CONF_STRING, "text; quote it when YAML could read it as something else (`\"yes\"`); "
                       "a range bounds its length in bytes"},
    {WEFT_CONF_DURATION, "`250ms`, `10s`, `1m30s`, `1.5h`, `7d`: units d, h, m, s, ms from the "
                         "largest down; `0` for none; whole milliseconds"},
    {WEFT_CONF_SIZE, "bytes: `512`, `64KiB`, `1.5MiB`, `2GiB`, `1TiB` (powers of 1024) or `10KB`, "
                     "`5MB`, `1GB` (powers of 1000)"},
    {WEFT_CONF_ADDR, "`host:port` or `[ipv6]:port`, e.g. `127.0.0.1:8500`, `[::1]:8500`; port "
                     "0-65535"},
    {WEFT_CONF_ENUM, "one of the listed words, exactly"},
    {WEFT_CONF_LOGLEVEL, "`debug`, `info`, `warn`, `error` or `off`"},
    {WEFT_CONF_TREE, "YAML as written under the key: a list or mapping (nested) or a single "
                     "value, whose contents the section named in the description documents; "
                     "set in the file only (no default, flag or environment variable)"},
};

void weft_conf_help(const weft_conf_section_t *secs, size_t nsecs, FILE *out)
{
    enum { COL = 28 };
    fprintf(out, "  %-*s %s\n", COL, "--config FILE", "YAML file with the settings below, by key");
    for (size_t s = 0; s < nsecs; s++) {
        for (size_t i = 0; i < secs[s].n; i++) {
            const weft_conf_option_t *o = &secs[s].opts[i];
            char left[160], range[160], choices[300];
            if (o->flag && o->type == WEFT_CONF_BOOL)
                snprintf(left, sizeof(left), "--%s, --no-%s", o->flag, o->flag);
            else if (o->flag)
                snprintf(left, sizeof(left), "--%s %s", o->flag, weft__conf_type_name(o->type));
            else
                snprintf(left, sizeof(left), "%s: %s", o->key, weft__conf_type_name(o->type));
            if (strlen(left) > COL)
                fprintf(out, "  %s\n  %-*s %s\n", left, COL, "", o->help ? o->help : "");
            else
                fprintf(out, "  %-*s %s\n", COL, left, o->help ? o->help : "");
            fprintf(out, "  %-*s   ", COL, "");
            if (o->flag) fprintf(out, "key %s, ", o->key);
            if (o->type == WEFT_CONF_TREE)
                fprintf(out, "set in the config file only");
            else if (o->def && o->type == WEFT_CONF_STRING)
                fprintf(out, "default \"%s\"", o->def);
            else
                fprintf(out, "default %s", o->def ? o->def : "none");
            if (o->env) fprintf(out, ", env %s", o->env);
            weft__conf_bounds_text(o, range, sizeof(range));
            if (range[0]) fprintf(out, ", range %s", range);
            weft__conf_choices_text(o, "|", choices, sizeof(choices));
            if (choices[0]) fprintf(out, ", one of %s", choices);
            fprintf(out, "\n");
        }
    }
}

/* Writes s into a Markdown table cell: '|' escaped, line breaks as spaces. */
static void cell(FILE *out, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '|')
            fputs("\\|", out);
        else if (*s == '\n' || *s == '\r')
            fputc(' ', out);
        else
            fputc(*s, out);
    }
}

static void code_cell(FILE *out, const char *pre, const char *s)
{
    if (!s) return;
    fputc('`', out);
    fputs(pre, out);
    cell(out, s);
    fputc('`', out);
}

void weft_conf_markdown(const weft_conf_section_t *secs, size_t nsecs, FILE *out)
{
    bool used[sizeof(syntaxes) / sizeof(syntaxes[0])] = {false};
    fprintf(out, "| key | type | default | flag | environment | range | description |\n");
    fprintf(out, "| --- | --- | --- | --- | --- | --- | --- |\n");
    for (size_t s = 0; s < nsecs; s++) {
        for (size_t i = 0; i < secs[s].n; i++) {
            const weft_conf_option_t *o = &secs[s].opts[i];
            char range[300];
            weft__conf_bounds_text(o, range, sizeof(range));
            if (!range[0]) weft__conf_choices_text(o, ", ", range, sizeof(range));
            for (size_t k = 0; k < sizeof(syntaxes) / sizeof(syntaxes[0]); k++)
                if (syntaxes[k].type == o->type) used[k] = true;
            fputs("| ", out);
            code_cell(out, "", o->key);
            fprintf(out, " | %s | ", weft__conf_type_name(o->type));
            if (o->def && !o->def[0])
                fputs("`\"\"`", out);
            else
                code_cell(out, "", o->def);
            fputs(" | ", out);
            code_cell(out, "--", o->flag);
            fputs(" | ", out);
            code_cell(out, "", o->env);
            fputs(" | ", out);
            cell(out, range);
            fputs(" | ", out);
            cell(out, o->help);
            fputs(" |\n", out);
        }
    }
    fprintf(out, "\n| type | syntax |\n| --- | --- |\n");
    for (size_t k = 0; k < sizeof(syntaxes) / sizeof(syntaxes[0]); k++)
        if (used[k])
            fprintf(out, "| %s | %s |\n", weft__conf_type_name(syntaxes[k].type),
                    syntaxes[k].syntax);
}
