/* safetensors.c: the safetensors reader. Every rule of FORMATS.md is checked before a tensor is
 * handed out; the data are mmap'd read-only and never touched with typed loads (st_to_f32 copies). */
#include "safetensors.h"

#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h" /* cfg_read_file */

static const struct { const char *name; size_t size; } k_dtypes[ST_DTYPE_COUNT_] = {
    [ST_BOOL] = {"BOOL", 1}, [ST_U8] = {"U8", 1},     [ST_I8] = {"I8", 1},     [ST_I16] = {"I16", 2},
    [ST_U16] = {"U16", 2},   [ST_F16] = {"F16", 2},   [ST_BF16] = {"BF16", 2}, [ST_I32] = {"I32", 4},
    [ST_U32] = {"U32", 4},   [ST_F32] = {"F32", 4},   [ST_F64] = {"F64", 8},   [ST_I64] = {"I64", 8},
    [ST_U64] = {"U64", 8},   [ST_F8_E4M3] = {"F8_E4M3", 1}, [ST_F8_E5M2] = {"F8_E5M2", 1},
};

const char *st_dtype_name(st_dtype dt)
{
    return (unsigned)dt < ST_DTYPE_COUNT_ ? k_dtypes[dt].name : "?";
}

size_t st_dtype_size(st_dtype dt)
{
    return (unsigned)dt < ST_DTYPE_COUNT_ ? k_dtypes[dt].size : 0;
}

struct st_file {
    char *path;
    const uint8_t *map;       /* whole file */
    size_t map_len;
    int owns_map;             /* munmap on close */
    st_tensor *tensors;       /* sorted by name */
    size_t n_tensors;
    char *names;              /* storage for tensor names */
};

/* ---- header checks ---- */

/* Strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF. Returns the offset of the
 * first bad byte, or len if all is well. */
static size_t utf8_check(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1, cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2, cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3, cp = c & 0x07;
        } else {
            return i;
        }
        if (i + n >= len)
            return i;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += n + 1;
    }
    return len;
}

static int dtype_from_name(const char *s)
{
    for (int i = 0; i < ST_DTYPE_COUNT_; i++)
        if (!strcmp(s, k_dtypes[i].name))
            return i;
    return -1;
}

/* A JSON number that is a non-negative integer below 2^53 (exact in a double). */
static int json_u64(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v))
        return 0;
    double d = v->valuedouble;
    if (!(d >= 0.0) || d != floor(d) || d >= 9007199254740992.0)
        return 0;
    *out = (uint64_t)d;
    return 1;
}

static int cmp_by_begin(const void *a, const void *b)
{
    const st_tensor *x = *(st_tensor *const *)a, *y = *(st_tensor *const *)b;
    if (x->data != y->data)
        return x->data < y->data ? -1 : 1;
    return x->n_bytes < y->n_bytes ? -1 : (x->n_bytes > y->n_bytes);
}

static int cmp_by_name(const void *a, const void *b)
{
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

static ck_status parse_entry(st_file *f, const cJSON *e, st_tensor *t, const uint8_t *data, uint64_t data_len,
                             ck_error *err)
{
    const char *p = f->path, *nm = e->string;
    if (!cJSON_IsObject(e))
        return ck_fail(err, CK_E_FORMAT, "%s: tensor '%s': entry must be an object", p, nm);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt))
        return ck_fail(err, CK_E_FORMAT, "%s: tensor '%s': 'dtype' must be a string", p, nm);
    int d = dtype_from_name(dt->valuestring);
    if (d < 0)
        return ck_fail(err, CK_E_FORMAT, "%s: tensor '%s': unknown dtype '%s'", p, nm, dt->valuestring);
    if (!cJSON_IsArray(shape))
        return ck_fail(err, CK_E_FORMAT, "%s: tensor '%s': 'shape' must be a list of integers", p, nm);
    int nd = cJSON_GetArraySize(shape);
    if (nd > ST_MAX_DIMS)
        return ck_fail(err, CK_E_UNSUPPORTED, "%s: tensor '%s': %d dimensions (at most %d supported)", p, nm, nd,
                       ST_MAX_DIMS);
    t->dtype = (st_dtype)d;
    t->n_dims = nd;
    uint64_t count = 1;
    int overflow = 0;
    for (int i = 0; i < nd; i++) {
        uint64_t v;
        if (!json_u64(cJSON_GetArrayItem(shape, i), &v))
            return ck_fail(err, CK_E_FORMAT, "%s: tensor '%s': shape[%d] must be a non-negative integer", p, nm, i);
        t->shape[i] = (int64_t)v;
        if (v != 0 && count > UINT64_MAX / v)
            overflow = 1;
        else
            count *= v;
    }
    uint64_t size = k_dtypes[d].size;
    if (overflow || count > UINT64_MAX / size)
        return ck_fail(err, CK_E_FORMAT, "%s: tensor '%s': element count of the shape overflows 64 bits", p, nm);
    t->n_elems = count;
    t->n_bytes = count * size;
    uint64_t begin, end;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || !json_u64(cJSON_GetArrayItem(offs, 0), &begin) ||
        !json_u64(cJSON_GetArrayItem(offs, 1), &end))
        return ck_fail(err, CK_E_FORMAT, "%s: tensor '%s': 'data_offsets' must be two non-negative integers", p, nm);
    if (end < begin)
        return ck_fail(err, CK_E_FORMAT, "%s: tensor '%s': data_offsets end %llu is before begin %llu", p, nm,
                       (unsigned long long)end, (unsigned long long)begin);
    if (end - begin != t->n_bytes)
        return ck_fail(err, CK_E_FORMAT, "%s: tensor '%s': %llu bytes in data_offsets, but dtype %s x shape needs "
                       "%llu", p, nm, (unsigned long long)(end - begin), dt->valuestring,
                       (unsigned long long)t->n_bytes);
    if (end > data_len)
        return ck_fail(err, CK_E_FORMAT, "%s: tensor '%s': data_offsets end %llu is past the data buffer (%llu "
                       "bytes)", p, nm, (unsigned long long)end, (unsigned long long)data_len);
    t->data = data + begin;
    if (((uintptr_t)(t->data - f->map)) % size)
        return ck_fail(err, CK_E_FORMAT, "%s: tensor '%s': data at file offset %llu is not aligned to its %zu-byte "
                       "dtype %s", p, nm, (unsigned long long)(t->data - f->map), (size_t)size, dt->valuestring);
    t->file_path = f->path;
    return CK_OK;
}

static ck_status parse_header(st_file *f, const char *hdr, size_t hdr_len, const uint8_t *data, uint64_t data_len,
                              ck_error *err)
{
    const char *p = f->path;
    size_t bad = utf8_check((const uint8_t *)hdr, hdr_len);
    if (bad != hdr_len)
        return ck_fail(err, CK_E_FORMAT, "%s: header is not valid UTF-8 (byte %zu of the header)", p, bad);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, hdr_len, &end, 0);
    if (!root)
        return ck_fail(err, CK_E_FORMAT, "%s: header is not valid JSON", p);
    for (const char *q = end; q < hdr + hdr_len; q++) {
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
            cJSON_Delete(root);
            return ck_fail(err, CK_E_FORMAT, "%s: header has bytes after its JSON value (offset %ld)", p,
                           (long)(q - hdr));
        }
    }
    ck_status st = CK_OK;
    if (!cJSON_IsObject(root)) {
        st = ck_fail(err, CK_E_FORMAT, "%s: header must be a JSON object", p);
        goto done;
    }
    size_t n = 0, names_len = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, root)
    {
        if (!strcmp(e->string, "__metadata__")) {
            if (!cJSON_IsObject(e)) {
                st = ck_fail(err, CK_E_FORMAT, "%s: '__metadata__' must be an object of strings", p);
                goto done;
            }
            const cJSON *m;
            cJSON_ArrayForEach(m, e) if (!cJSON_IsString(m))
            {
                st = ck_fail(err, CK_E_FORMAT, "%s: '__metadata__' value '%s' must be a string", p, m->string);
                goto done;
            }
            continue;
        }
        n++;
        names_len += strlen(e->string) + 1;
    }
    f->tensors = calloc(n ? n : 1, sizeof *f->tensors);
    f->names = malloc(names_len ? names_len : 1);
    st_tensor **order = calloc(n ? n : 1, sizeof *order);
    if (!f->tensors || !f->names || !order) {
        free(order);
        st = ck_fail(err, CK_E_OUT_OF_MEMORY, "%s: cannot allocate the tensor table (%zu tensors)", p, n);
        goto done;
    }
    char *name_at = f->names;
    size_t i = 0;
    cJSON_ArrayForEach(e, root)
    {
        if (!strcmp(e->string, "__metadata__"))
            continue;
        st_tensor *t = &f->tensors[i];
        size_t nl = strlen(e->string) + 1;
        memcpy(name_at, e->string, nl);
        t->name = name_at;
        name_at += nl;
        st = parse_entry(f, e, t, data, data_len, err);
        if (st != CK_OK) {
            free(order);
            goto done;
        }
        i++;
    }
    f->n_tensors = n;

    /* Duplicate keys first: a repeated entry would otherwise read as an overlap. */
    qsort(f->tensors, n, sizeof *f->tensors, cmp_by_name);
    for (i = 1; i < n; i++) {
        if (!strcmp(f->tensors[i - 1].name, f->tensors[i].name)) {
            st = ck_fail(err, CK_E_FORMAT, "%s: tensor '%s' appears twice in the header (duplicate key)", p,
                         f->tensors[i].name);
            free(order);
            goto done;
        }
    }
    for (i = 0; i < n; i++)
        order[i] = &f->tensors[i];

    /* Sorted by begin, the tensors must tile the data buffer exactly. */
    qsort(order, n, sizeof *order, cmp_by_begin);
    uint64_t expect = 0;
    for (i = 0; i < n; i++) {
        uint64_t b = (uint64_t)(order[i]->data - data);
        if (b != expect) {
            st = ck_fail(err, CK_E_FORMAT, "%s: tensor '%s': data begins at %llu, expected %llu (%s)", p,
                         order[i]->name, (unsigned long long)b, (unsigned long long)expect,
                         b > expect ? "a gap between tensors" : "overlaps the previous tensor");
            free(order);
            goto done;
        }
        expect = b + order[i]->n_bytes;
    }
    free(order);
    if (expect != data_len) {
        st = ck_fail(err, CK_E_FORMAT, "%s: tensors end at byte %llu of the data buffer but the file holds %llu "
                     "(trailing bytes)", p, (unsigned long long)expect, (unsigned long long)data_len);
        goto done;
    }
done:
    cJSON_Delete(root);
    return st;
}

static ck_status validate(st_file *f, ck_error *err)
{
    const char *p = f->path;
    if (f->map_len < 8)
        return ck_fail(err, CK_E_FORMAT, "%s: file is %zu bytes, shorter than the 8-byte header length", p,
                       f->map_len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | f->map[i];
    if (n > ST_MAX_HEADER)
        return ck_fail(err, CK_E_FORMAT, "%s: header length %llu is over the limit of %llu bytes", p,
                       (unsigned long long)n, (unsigned long long)ST_MAX_HEADER);
    if (n > f->map_len - 8)
        return ck_fail(err, CK_E_FORMAT, "%s: header length %llu runs past the end of the file (%zu bytes)", p,
                       (unsigned long long)n, f->map_len);
    return parse_header(f, (const char *)f->map + 8, (size_t)n, f->map + 8 + n, f->map_len - 8 - n, err);
}

static st_file *file_new(const char *name)
{
    st_file *f = calloc(1, sizeof *f);
    if (f && !(f->path = strdup(name))) {
        free(f);
        return NULL;
    }
    return f;
}

ck_status st_open_memory(const uint8_t *buf, size_t len, const char *name, st_file **out, ck_error *err)
{
    *out = NULL;
    st_file *f = file_new(name);
    if (!f)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "%s: out of memory", name);
    f->map = buf;
    f->map_len = len;
    ck_status st = validate(f, err);
    if (st != CK_OK) {
        st_close(f);
        return st;
    }
    *out = f;
    return CK_OK;
}

ck_status st_open(const char *path, st_file **out, ck_error *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ck_fail(err, errno == ENOENT ? CK_E_MISSING : CK_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return ck_fail(err, CK_E_IO, "%s: not a regular file", path);
    }
    st_file *f = file_new(path);
    if (!f) {
        close(fd);
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    f->map_len = (size_t)sb.st_size;
    if (f->map_len > 0) {
        void *m = mmap(NULL, f->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            close(fd);
            st_close(f);
            return ck_fail(err, CK_E_IO, "%s: cannot map: %s", path, strerror(errno));
        }
        f->map = m;
        f->owns_map = 1;
    } else {
        f->map = (const uint8_t *)"";
    }
    close(fd);
    ck_status st = validate(f, err);
    if (st != CK_OK) {
        st_close(f);
        return st;
    }
    *out = f;
    return CK_OK;
}

void st_close(st_file *f)
{
    if (!f)
        return;
    if (f->owns_map && f->map_len)
        munmap((void *)f->map, f->map_len);
    free(f->tensors);
    free(f->names);
    free(f->path);
    free(f);
}

size_t st_count(const st_file *f) { return f->n_tensors; }
const st_tensor *st_at(const st_file *f, size_t i) { return i < f->n_tensors ? &f->tensors[i] : NULL; }

const st_tensor *st_find(const st_file *f, const char *name)
{
    st_tensor key = {.name = name};
    return bsearch(&key, f->tensors, f->n_tensors, sizeof key, cmp_by_name);
}

/* ---- conversion ---- */

static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            bits = sign | (exp << 23) | ((man & 0x3FF) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7F800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

ck_status st_to_f32(const st_tensor *t, uint64_t first, uint64_t n, float *out, ck_error *err)
{
    if (first > t->n_elems || n > t->n_elems - first)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "tensor '%s': range [%llu, +%llu) outside %llu elements", t->name,
                       (unsigned long long)first, (unsigned long long)n, (unsigned long long)t->n_elems);
    const uint8_t *src = t->data + first * st_dtype_size(t->dtype);
    switch (t->dtype) {
    case ST_F32:
        memcpy(out, src, n * 4);
        return CK_OK;
    case ST_F16:
        for (uint64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            out[i] = f16_to_f32(h);
        }
        return CK_OK;
    case ST_BF16:
        for (uint64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            uint32_t bits = (uint32_t)h << 16;
            memcpy(&out[i], &bits, 4);
        }
        return CK_OK;
    default:
        return ck_fail(err, CK_E_UNSUPPORTED, "%s: tensor '%s': dtype %s cannot be read as floats", t->file_path,
                       t->name, st_dtype_name(t->dtype));
    }
}

/* ---- sets: one file or an index of shards ---- */

struct st_set {
    st_file **files;
    size_t n_files;
    const st_tensor **index; /* all tensors, sorted by name */
    size_t n;
};

static int cmp_ptr_by_name(const void *a, const void *b)
{
    return strcmp((*(const st_tensor *const *)a)->name, (*(const st_tensor *const *)b)->name);
}

static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

static int has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static ck_status refuse_pickle_or_missing(const char *dir, ck_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return ck_fail(err, CK_E_MISSING, "%s: cannot open model directory: %s", dir, strerror(errno));
    const struct dirent *de;
    char found[256] = "";
    while ((de = readdir(d))) {
        if (has_suffix(de->d_name, ".bin") || has_suffix(de->d_name, ".pt") || has_suffix(de->d_name, ".pth") ||
            has_suffix(de->d_name, ".ckpt") || has_suffix(de->d_name, ".pkl")) {
            snprintf(found, sizeof found, "%s", de->d_name);
            break;
        }
    }
    closedir(d);
    if (found[0])
        return ck_fail(err, CK_E_UNSUPPORTED, "%s/%s: pickle checkpoints are refused: loading one executes code "
                       "from the file. Convert it to safetensors (e.g. with transformers' save_pretrained(..., "
                       "safe_serialization=True))", dir, found);
    return ck_fail(err, CK_E_MISSING, "%s: no model.safetensors or model.safetensors.index.json", dir);
}

static ck_status set_add_file(st_set *s, const char *path, st_file **out, ck_error *err)
{
    for (size_t i = 0; i < s->n_files; i++)
        if (!strcmp(s->files[i]->path, path)) {
            *out = s->files[i];
            return CK_OK;
        }
    st_file **nf = realloc(s->files, (s->n_files + 1) * sizeof *nf);
    if (!nf)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "out of memory");
    s->files = nf;
    ck_status st = st_open(path, out, err);
    if (st != CK_OK)
        return st;
    s->files[s->n_files++] = *out;
    return CK_OK;
}

static ck_status open_index(st_set *s, const char *dir, const char *index_path, ck_error *err)
{
    char *text = NULL;
    size_t len = 0;
    ck_status st = cfg_read_file(index_path, 64u << 20, &text, &len, err);
    if (st != CK_OK)
        return st;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root)
        return ck_fail(err, CK_E_FORMAT, "%s: not valid JSON", index_path);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) {
        cJSON_Delete(root);
        return ck_fail(err, CK_E_FORMAT, "%s: 'weight_map' must be an object of tensor name -> file name", index_path);
    }
    size_t n = (size_t)cJSON_GetArraySize(wm);
    s->index = calloc(n ? n : 1, sizeof *s->index);
    if (!s->index) {
        cJSON_Delete(root);
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "out of memory");
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, wm)
    {
        if (!cJSON_IsString(e)) {
            st = ck_fail(err, CK_E_FORMAT, "%s: weight_map['%s'] must be a file name string", index_path, e->string);
            break;
        }
        const char *fn = e->valuestring;
        if (!fn[0] || strchr(fn, '/') || !strcmp(fn, "..") || !has_suffix(fn, ".safetensors")) {
            st = ck_fail(err, CK_E_FORMAT, "%s: weight_map['%s'] = '%s' must be a .safetensors file in the same "
                         "directory", index_path, e->string, fn);
            break;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, fn);
        st_file *f;
        st = set_add_file(s, path, &f, err);
        if (st != CK_OK)
            break;
        const st_tensor *t = st_find(f, e->string);
        if (!t) {
            st = ck_fail(err, CK_E_MISSING, "%s: tensor '%s' is listed in %s but absent from it", path, e->string,
                         index_path);
            break;
        }
        s->index[s->n++] = t;
    }
    cJSON_Delete(root);
    return st;
}

ck_status st_set_open_dir(const char *dir, st_set **out, ck_error *err)
{
    *out = NULL;
    st_set *s = calloc(1, sizeof *s);
    if (!s)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "out of memory");
    char single[4096], index[4096];
    snprintf(single, sizeof single, "%s/model.safetensors", dir);
    snprintf(index, sizeof index, "%s/model.safetensors.index.json", dir);
    ck_status st;
    if (file_exists(index)) {
        st = open_index(s, dir, index, err);
    } else if (file_exists(single)) {
        st_file *f;
        st = set_add_file(s, single, &f, err);
        if (st == CK_OK) {
            s->index = calloc(f->n_tensors ? f->n_tensors : 1, sizeof *s->index);
            if (!s->index)
                st = ck_fail(err, CK_E_OUT_OF_MEMORY, "out of memory");
            for (size_t i = 0; st == CK_OK && i < f->n_tensors; i++)
                s->index[s->n++] = &f->tensors[i];
        }
    } else {
        st = refuse_pickle_or_missing(dir, err);
    }
    if (st == CK_OK) {
        qsort(s->index, s->n, sizeof *s->index, cmp_ptr_by_name);
        for (size_t i = 1; i < s->n; i++)
            if (!strcmp(s->index[i - 1]->name, s->index[i]->name)) {
                st = ck_fail(err, CK_E_FORMAT, "%s: tensor '%s' is listed twice", dir, s->index[i]->name);
                break;
            }
    }
    if (st != CK_OK) {
        st_set_close(s);
        return st;
    }
    *out = s;
    return CK_OK;
}

void st_set_close(st_set *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_files; i++)
        st_close(s->files[i]);
    free(s->files);
    free(s->index);
    free(s);
}

const st_tensor *st_set_find(const st_set *s, const char *name)
{
    st_tensor key = {.name = name};
    const st_tensor *kp = &key;
    const st_tensor *const *r = bsearch(&kp, s->index, s->n, sizeof *s->index, cmp_ptr_by_name);
    return r ? *r : NULL;
}

size_t st_set_count(const st_set *s) { return s->n; }
const st_tensor *st_set_at(const st_set *s, size_t i) { return i < s->n ? s->index[i] : NULL; }
