/* quant_model.c: the hooks the model loader (engine/model.c) calls for quantized checkpoints. A quantized
 * linear is dequantized to float32 [N, K] on the host and handed to the backend's `upload` as an F32
 * tensor, so every backend runs it with its dense matmul (the CPU reference path). */
#include "quant_internal.h"

#include "backend.h"

#include <stdio.h>
#include <stdlib.h>

void qnt_detect_set(const st_set *ws, qnt_config *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < st_set_count(ws) && out->format == QNT_NONE; i++) {
        const char *n = st_set_at(ws, i)->name;
        size_t l = strlen(n);
        if (l > 8 && !strcmp(n + l - 8, ".qweight"))
            out->format = QNT_GPTQ; /* bits = 0: read from each linear's shapes */
        else if (l > 9 && !strcmp(n + l - 9, ".q_weight"))
            out->format = QNT_EXL2;
    }
}

bool qnt_weight_prefix(const char *name, char *prefix, size_t cap)
{
    size_t l = strlen(name);
    if (l <= 7 || strcmp(name + l - 7, ".weight") != 0 || l - 7 >= cap)
        return false;
    memcpy(prefix, name, l - 7);
    prefix[l - 7] = '\0';
    return true;
}

static bool quantized_want(const qnt_config *q, const st_set *ws, const char *name, int n_dims, char *prefix,
                           size_t cap)
{
    return q && q->format != QNT_NONE && n_dims == 2 && qnt_weight_prefix(name, prefix, cap) &&
           qnt_linear_is_quantized(q, ws, prefix);
}

ck_status qnt_model_check_tensor(const qnt_config *q, const st_set *ws, const char *name, int n_dims,
                                 const int64_t *shape, bool *handled, uint64_t *n_elems, ck_error *err)
{
    char prefix[256];
    *handled = quantized_want(q, ws, name, n_dims, prefix, sizeof prefix);
    if (!*handled)
        return CK_OK;
    if (n_elems)
        *n_elems = (uint64_t)shape[0] * (uint64_t)shape[1];
    return qnt_check_linear(q, ws, prefix, shape[1], shape[0], NULL, err);
}

ck_status qnt_upload_linear(be_backend *be, const qnt_config *q, const st_set *ws, const char *prefix, int64_t K,
                            int64_t N, be_buf **out, ck_error *err)
{
    size_t n = (size_t)K * (size_t)N;
    float *w = malloc(n * sizeof *w);
    if (!w)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "linear '%s': cannot allocate %zu floats to dequantize into", prefix,
                       n);
    ck_status st = qnt_dequantize_linear(q, ws, prefix, K, N, w, err);
    if (st == CK_OK) {
        char name[300];
        snprintf(name, sizeof name, "%s.weight (dequantized)", prefix);
        st_tensor t;
        memset(&t, 0, sizeof t);
        t.name = name;
        t.dtype = ST_F32;
        t.n_dims = 2;
        t.shape[0] = N;
        t.shape[1] = K;
        t.n_elems = n;
        t.n_bytes = n * sizeof(float);
        t.data = (const uint8_t *)w;
        t.file_path = "(dequantized)";
        st = be->ops->upload(be, &t, out, err);
    }
    free(w);
    return st;
}

ck_status qnt_model_upload_tensor(be_backend *be, const qnt_config *q, const st_set *ws, const char *name,
                                  int n_dims, const int64_t *shape, be_buf **out, bool *handled, ck_error *err)
{
    char prefix[256];
    *handled = quantized_want(q, ws, name, n_dims, prefix, sizeof prefix);
    if (!*handled)
        return CK_OK;
    return qnt_upload_linear(be, q, ws, prefix, shape[1], shape[0], out, err);
}
