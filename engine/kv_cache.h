/* kv_cache.h: the paged KV cache (prefix kv_). Pages of `page_size` tokens (256 by default)
 * are taken from one pool per layer; each sequence owns a page table. Not thread-safe:
 * the scheduler thread owns the cache. */
#ifndef CK_KV_CACHE_H
#define CK_KV_CACHE_H

#include <stdint.h>

#include "backend.h"
#include "ck_error.h"
#include "config.h"

#define KV_DEFAULT_PAGE_SIZE 256

typedef struct kv_cache {
    be_backend *be;
    int n_layers, n_kv_heads, head_dim;
    int page_size;
    int n_pages;             /* pages in each layer's pool */
    be_buf **k_pool;         /* [n_layers] each [n_pages, page_size, n_kv_heads, head_dim] */
    be_buf **v_pool;
    int32_t *free_pages;     /* stack of free page ids */
    int n_free;
} kv_cache;

typedef struct kv_seq {
    int32_t *pages;          /* page ids, in position order */
    int n_pages;
    int cap_pages;
    int n_tokens;            /* tokens whose K and V are in the cache */
} kv_seq;

ck_status kv_cache_create(be_backend *be, const cfg_config *cfg, int n_pages, int page_size, kv_cache **out,
                          ck_error *err);
void kv_cache_destroy(kv_cache *c);

/* Bytes one page costs across all layers (K and V). */
size_t kv_page_bytes(const cfg_config *cfg, int page_size, size_t elem_size);

void kv_seq_init(kv_seq *s);
/* Make room for n_total tokens; CK_E_OUT_OF_MEMORY (and nothing taken) if pages run out. */
ck_status kv_seq_reserve(kv_cache *c, kv_seq *s, int n_total, ck_error *err);
/* Forget tokens past n_tokens, returning whole pages no longer needed. */
void kv_seq_truncate(kv_cache *c, kv_seq *s, int n_tokens);
/* Return every page and free the page table. */
void kv_seq_release(kv_cache *c, kv_seq *s);

#endif
