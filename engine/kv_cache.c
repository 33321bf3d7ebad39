/* kv_cache.c: page pools per layer and per-sequence page tables. */
#include "kv_cache.h"

#include <stdlib.h>

size_t kv_page_bytes(const cfg_config *cfg, int page_size, size_t elem_size)
{
    return 2 * (size_t)cfg->n_layers * (size_t)page_size * (size_t)cfg->n_kv_heads * (size_t)cfg->head_dim * elem_size;
}

ck_status kv_cache_create(be_backend *be, const cfg_config *cfg, int n_pages, int page_size, kv_cache **out,
                          ck_error *err)
{
    *out = NULL;
    if (n_pages <= 0 || page_size <= 0)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "kv cache: %d pages of %d tokens", n_pages, page_size);
    kv_cache *c = calloc(1, sizeof *c);
    if (!c)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "kv cache: out of memory");
    c->be = be;
    c->n_layers = cfg->n_layers;
    c->n_kv_heads = cfg->n_kv_heads;
    c->head_dim = cfg->head_dim;
    c->page_size = page_size;
    c->n_pages = n_pages;
    c->k_pool = calloc((size_t)cfg->n_layers, sizeof *c->k_pool);
    c->v_pool = calloc((size_t)cfg->n_layers, sizeof *c->v_pool);
    c->free_pages = malloc((size_t)n_pages * sizeof *c->free_pages);
    if (!c->k_pool || !c->v_pool || !c->free_pages) {
        kv_cache_destroy(c);
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "kv cache: out of memory");
    }
    size_t per_layer = (size_t)n_pages * page_size * cfg->n_kv_heads * cfg->head_dim;
    for (int l = 0; l < cfg->n_layers; l++) {
        ck_status st = be->ops->alloc(be, per_layer, &c->k_pool[l], err);
        if (st == CK_OK)
            st = be->ops->alloc(be, per_layer, &c->v_pool[l], err);
        if (st != CK_OK) {
            kv_cache_destroy(c);
            return st;
        }
    }
    /* a stack with page 0 on top, so sequences get low page ids first */
    for (int i = 0; i < n_pages; i++)
        c->free_pages[i] = n_pages - 1 - i;
    c->n_free = n_pages;
    *out = c;
    return CK_OK;
}

void kv_cache_destroy(kv_cache *c)
{
    if (!c)
        return;
    if (c->be->ops->invalidate)
        c->be->ops->invalidate(c->be); /* graphs captured over these pools */
    for (int l = 0; l < c->n_layers; l++) {
        if (c->k_pool && c->k_pool[l])
            c->be->ops->free(c->be, c->k_pool[l]);
        if (c->v_pool && c->v_pool[l])
            c->be->ops->free(c->be, c->v_pool[l]);
    }
    free(c->k_pool);
    free(c->v_pool);
    free(c->free_pages);
    free(c);
}

void kv_seq_init(kv_seq *s)
{
    s->pages = NULL;
    s->n_pages = s->cap_pages = s->n_tokens = 0;
}

ck_status kv_seq_reserve(kv_cache *c, kv_seq *s, int n_total, ck_error *err)
{
    int need = (n_total + c->page_size - 1) / c->page_size;
    if (need <= s->n_pages)
        return CK_OK;
    if (need - s->n_pages > c->n_free)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "kv cache: %d more pages needed for %d tokens, %d free of %d",
                       need - s->n_pages, n_total, c->n_free, c->n_pages);
    if (need > s->cap_pages) {
        int cap = s->cap_pages ? s->cap_pages : 4;
        while (cap < need)
            cap *= 2;
        int32_t *p = realloc(s->pages, (size_t)cap * sizeof *p);
        if (!p)
            return ck_fail(err, CK_E_OUT_OF_MEMORY, "kv cache: out of memory for a page table");
        s->pages = p;
        s->cap_pages = cap;
    }
    while (s->n_pages < need)
        s->pages[s->n_pages++] = c->free_pages[--c->n_free];
    return CK_OK;
}

void kv_seq_truncate(kv_cache *c, kv_seq *s, int n_tokens)
{
    if (n_tokens < s->n_tokens)
        s->n_tokens = n_tokens < 0 ? 0 : n_tokens;
    int keep = (s->n_tokens + c->page_size - 1) / c->page_size;
    while (s->n_pages > keep)
        c->free_pages[c->n_free++] = s->pages[--s->n_pages];
}

void kv_seq_release(kv_cache *c, kv_seq *s)
{
    s->n_tokens = 0;
    kv_seq_truncate(c, s, 0);
    free(s->pages);
    kv_seq_init(s);
}
