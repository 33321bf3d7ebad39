/* tok_util.c: growable buffers, hash maps, UTF-8 helpers and the GPT-2 byte map. */
#include <stdlib.h>
#include <string.h>

#include "tok_impl.h"

/* ---- buffers ---------------------------------------------------------------- */
int tok_buf_reserve(tok_buf *b, size_t extra)
{
    if (b->len + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

int tok_buf_put(tok_buf *b, const void *data, size_t n)
{
    if (tok_buf_reserve(b, n)) return -1;
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

void tok_buf_free(tok_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

int tok_ivec_push(tok_ivec *v, int32_t x)
{
    if (v->len == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *p = realloc(v->p, cap * sizeof *p);
        if (!p) return -1;
        v->p = p;
        v->cap = cap;
    }
    v->p[v->len++] = x;
    return 0;
}

void tok_ivec_free(tok_ivec *v)
{
    free(v->p);
    v->p = NULL;
    v->len = v->cap = 0;
}

/* ---- hash maps -------------------------------------------------------------------- */
/* 8 bytes at a time (the maps' keys are mostly 1-16 bytes). */
uint64_t tok_hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ ((uint64_t)n * 0xFF51AFD7ED558CCDull), w;
    for (; n >= 8; s += 8, n -= 8) {
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
    }
    if (n) { /* the tail in a register (a short memcpy to the stack stalls the load after it) */
        w = 0;
        for (size_t i = 0; i < n; i++) w |= (uint64_t)(unsigned char)s[i] << (8 * i);
        h = (h ^ w) * 0x94D049BB133111EBull;
    }
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 32);
}

static size_t pow2_for(size_t expected)
{
    size_t cap = 16;
    while (cap < expected * 2) cap *= 2;
    return cap;
}

int tok_strmap_init(tok_strmap *m, size_t expected)
{
    memset(m, 0, sizeof *m);
    m->cap = pow2_for(expected);
    m->slots = calloc(m->cap, sizeof *m->slots);
    if (!m->slots) {
        m->cap = 0;
        return -1;
    }
    return 0;
}

static int strmap_grow(tok_strmap *m)
{
    tok_strmap n;
    if (tok_strmap_init(&n, m->cap)) return -1;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key) tok_strmap_put(&n, m->slots[i].key, m->slots[i].len, m->slots[i].val);
    tok_strmap_free(m);
    *m = n;
    return 0;
}

int tok_strmap_put_h(tok_strmap *m, const char *key, size_t len, uint64_t hash, int32_t val)
{
    if ((m->count + 1) * 2 > m->cap && strmap_grow(m)) return -1;
    size_t mask = m->cap - 1, i = hash & mask;
    while (m->slots[i].key) {
        if (m->slots[i].len == len && memcmp(m->slots[i].key, key, len) == 0) return 0;
        i = (i + 1) & mask;
    }
    m->slots[i].key = key;
    m->slots[i].len = (uint32_t)len;
    m->slots[i].val = val;
    m->count++;
    return 1;
}

int32_t tok_strmap_get_h(const tok_strmap *m, const char *key, size_t len, uint64_t hash)
{
    if (!m->cap) return -1;
    size_t mask = m->cap - 1, i = hash & mask;
    while (m->slots[i].key) {
        if (m->slots[i].len == len && memcmp(m->slots[i].key, key, len) == 0) return m->slots[i].val;
        i = (i + 1) & mask;
    }
    return -1;
}

int tok_strmap_put(tok_strmap *m, const char *key, size_t len, int32_t val)
{
    return tok_strmap_put_h(m, key, len, tok_hash_bytes(key, len), val);
}

int32_t tok_strmap_get(const tok_strmap *m, const char *key, size_t len)
{
    return tok_strmap_get_h(m, key, len, tok_hash_bytes(key, len));
}

void tok_strmap_free(tok_strmap *m)
{
    free(m->slots);
    memset(m, 0, sizeof *m);
}

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xFF51AFD7ED558CCDull;
    x ^= x >> 33;
    x *= 0xC4CEB9FE1A85EC53ull;
    return x ^ (x >> 33);
}

uint64_t tok_pair_hash(int32_t a, int32_t b)
{
    return hash_u64(((uint64_t)(uint32_t)a << 32) | (uint32_t)b);
}

int tok_pairmap_init(tok_pairmap *m, size_t expected)
{
    memset(m, 0, sizeof *m);
    m->cap = 16;
    while (m->cap * 3 < expected * 4) m->cap *= 2;
    m->slots = malloc(m->cap * sizeof *m->slots);
    if (!m->slots) {
        m->cap = 0;
        return -1;
    }
    for (size_t i = 0; i < m->cap; i++) m->slots[i].key = UINT64_MAX;
    return 0;
}

int tok_pairmap_put(tok_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t merged)
{
    return tok_pairmap_put_h(m, a, b, tok_pair_hash(a, b), rank, merged);
}

int tok_pairmap_put_h(tok_pairmap *m, int32_t a, int32_t b, uint64_t hash, int32_t rank, int32_t merged)
{
    if ((m->count + 1) * 4 > m->cap * 3) {
        tok_pairmap n;
        if (tok_pairmap_init(&n, m->cap)) return -1; /* twice the slots */
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i].key != UINT64_MAX)
                tok_pairmap_put(&n, (int32_t)(m->slots[i].key >> 32), (int32_t)(uint32_t)m->slots[i].key,
                                m->slots[i].rank, m->slots[i].merged);
        tok_pairmap_free(m);
        *m = n;
    }
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t mask = m->cap - 1, i = hash & mask;
    while (m->slots[i].key != UINT64_MAX) {
        if (m->slots[i].key == k) return 0;
        i = (i + 1) & mask;
    }
    m->slots[i].key = k;
    m->slots[i].rank = rank;
    m->slots[i].merged = merged;
    m->count++;
    return 1;
}

int tok_pairmap_get(const tok_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *merged)
{
    if (!m->cap) return 0;
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t mask = m->cap - 1, i = hash_u64(k) & mask;
    while (m->slots[i].key != UINT64_MAX) {
        if (m->slots[i].key == k) {
            *rank = m->slots[i].rank;
            *merged = m->slots[i].merged;
            return 1;
        }
        i = (i + 1) & mask;
    }
    return 0;
}

void tok_pairmap_free(tok_pairmap *m)
{
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* ---- UTF-8 ----------------------------------------------------------------------------- */
size_t tok_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c < 0xC2) return 0;
    if (c < 0xE0) {
        if (n < 2 || (s[1] & 0xC0) != 0x80) return 0;
        *cp = ((c & 0x1Fu) << 6) | (s[1] & 0x3Fu);
        return 2;
    }
    if (c < 0xF0) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && s[1] < 0xA0) return 0;
        if (c == 0xED && s[1] > 0x9F) return 0;
        *cp = ((c & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
        return 3;
    }
    if (c < 0xF5) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
        if (c == 0xF0 && s[1] < 0x90) return 0;
        if (c == 0xF4 && s[1] > 0x8F) return 0;
        *cp = ((c & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
        return 4;
    }
    return 0;
}

size_t tok_utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* How many bytes of s form a valid prefix of a sequence led by s[0] (0 if s[0] cannot
 * lead), and how long the full sequence would be. */
static size_t valid_prefix(const unsigned char *s, size_t n, size_t *need)
{
    unsigned c = s[0];
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) *need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        *need = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        *need = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    size_t k = 1;
    if (k < n && k < *need && s[k] >= lo && s[k] <= hi) k++;
    else return 1;
    while (k < n && k < *need && (s[k] & 0xC0) == 0x80) k++;
    return k;
}

size_t tok_utf8_bad_len(const unsigned char *s, size_t n)
{
    size_t need = 0, k = valid_prefix(s, n, &need);
    return k ? k : 1;
}

int tok_utf8_valid(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    uint32_t cp;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = tok_utf8_decode(u + i, n - i, &cp);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

int tok_utf8_lossy_append(tok_buf *b, const char *s, size_t n)
{
    if (!n) return 0;
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0;
    uint32_t cp;
    if (tok_buf_reserve(b, n)) return -1;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = tok_utf8_decode(u + i, n - i, &cp);
        if (k) {
            i += k;
            continue;
        }
        if (tok_buf_put(b, s + run, i - run)) return -1;
        if (tok_buf_put(b, "\xEF\xBF\xBD", 3)) return -1;
        i += tok_utf8_bad_len(u + i, n - i);
        run = i;
    }
    return tok_buf_put(b, s + run, n - run);
}

int tok_utf8_incomplete_tail(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        unsigned c = u[n - k];
        if ((c & 0xC0) == 0x80) continue; /* a continuation byte: look further back */
        size_t need = 0, got = valid_prefix(u + n - k, k, &need);
        return got == k && k < need;
    }
    return 0;
}

int tok_is_white_space(uint32_t cp)
{
    if (cp <= 0x20) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
    if (cp < 0x85) return 0;
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* GPT-2: printable bytes map to themselves, the other 68 to U+0100.. in byte order. */
static int byte_is_printable(unsigned b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

uint32_t tok_byte_to_cp(uint8_t b)
{
    if (byte_is_printable(b)) return b;
    if (b <= 0x20) return 256u + b;              /* 0x00..0x20: 33 bytes */
    if (b >= 0x7F && b <= 0xA0) return 289u + (b - 0x7Fu); /* 34 bytes */
    return 323u;                                 /* 0xAD */
}

int tok_cp_to_byte(uint32_t cp)
{
    if (cp < 256) return byte_is_printable(cp) ? (int)cp : -1;
    if (cp < 289) return (int)(cp - 256);
    if (cp < 323) return (int)(0x7F + cp - 289);
    if (cp == 323) return 0xAD;
    return -1;
}
