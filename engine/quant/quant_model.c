/* quant_model.c: the hooks the model loader (engine/model.c) calls for quantized checkpoints. A backend
 * with an upload_quant hook (cuda) receives each quantized linear as it is stored (qnt_host_linear, checked)
 * and runs it with its quantized kernels; any other backend (cpu, the reference) gets it dequantized to
 * float32 [N, K] through its `upload`, and runs it with its dense matmul. qnt_model_sizes counts what a
 * model's quantized linears hold, for the memory planner and `chaski info`. */
#include "quant_internal.h"

#include "backend.h"
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

void qnt_describe(const qnt_config *q, char *out, size_t cap)
{
    if (q->format == QNT_GPTQ)
        snprintf(out, cap, "gptq-%dbit-g%d%s", q->bits, q->group_size, q->desc_act ? "-act" : "");
    else if (q->format == QNT_EXL2)
        snprintf(out, cap, "exl2-%.2fbpw", q->exl2_bits);
    else
        snprintf(out, cap, "none");
}

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
    if (be->ops->upload_quant) { /* kept quantized: no dense copy anywhere */
        qnt_host_linear l;
        ck_status st = qnt_host_linear_from_set(q, ws, prefix, K, N, &l, err);
        if (st == CK_OK)
            st = be->ops->upload_quant(be, prefix, &l, out, err);
        qnt_host_linear_free(&l);
        return st;
    }
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

uint64_t qnt_linear_device_bytes(const qnt_linear_info *i, int wide)
{
    uint64_t K = (uint64_t)i->K, N = (uint64_t)i->N, G = (uint64_t)i->n_groups;
    if (i->format == QNT_GPTQ) {
        uint64_t bits = i->rows_at_bits[8] ? 8 : 4, per = 32 / bits;
        /* qweight, qzeros, fp16 scales, int32 perm, one 16-byte unit per packed row */
        return K / per * N * 4 + G * (N / per) * 4 + G * N * 2 + K * 4 + K / per * 16;
    }
    /* wide (qnt_config.exl2_widen, qnt_widen): 2/3-bit rows at 4 bits, 5/6-bit at 8; at QNT_WIDEN_8 all at 8 where
     * qnt_exl2_all_to_8 says so */
    int64_t narrow = 0, wider = 0;
    for (int b = 2; b <= 8; b++)
        *(b <= 4 ? &narrow : &wider) += i->rows_at_bits[b];
    const bool to8 = wide >= QNT_WIDEN_8 && qnt_exl2_all_to_8(narrow, wider);
    uint64_t packed = 0;
    for (int b = 2; b <= 8; b++) {
        const uint64_t B = wide <= QNT_WIDEN_NONE ? (uint64_t)b : to8 || b > 4 ? 8 : 4;
        packed += (uint64_t)i->rows_at_bits[b] * B / 32;
    }
    /* q_weight, q_scale, fp16 q_scale_max, int32 perm, units of <= 32 rows of one group (at most K/32 + G) */
    return packed * N * 4 + G * (N / 8) * 4 + G * 2 + K * 4 + (K / 32 + G) * 16;
}

ck_status qnt_model_sizes(const qnt_config *q, const st_set *ws, const struct cfg_config *c, qnt_model_sizes_t *out,
                          ck_error *err)
{
    memset(out, 0, sizeof *out);
    if (!q || q->format == QNT_NONE)
        return CK_OK;
    int64_t H = c->hidden_size, I = c->intermediate_size, V = c->vocab_size;
    int64_t Q = (int64_t)c->n_heads * c->head_dim, KV = (int64_t)c->n_kv_heads * c->head_dim;
    static const char *const k_names[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                          "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                          "mlp.down_proj"};
    const int64_t shapes[7][2] = {{Q, H}, {KV, H}, {KV, H}, {H, Q}, {I, H}, {I, H}, {H, I}}; /* [N, K] */
    int n_lin = c->n_layers * 7 + (c->tie_word_embeddings ? 0 : 1);
    for (int j = 0; j < n_lin; j++) {
        int layer = j < c->n_layers * 7 ? j / 7 : -1;
        char prefix[128];
        int64_t N, K;
        if (layer >= 0) {
            snprintf(prefix, sizeof prefix, "model.layers.%d.%s", layer, k_names[j % 7]);
            N = shapes[j % 7][0];
            K = shapes[j % 7][1];
        } else {
            snprintf(prefix, sizeof prefix, "lm_head");
            N = V;
            K = H;
        }
        if (!qnt_linear_is_quantized(q, ws, prefix))
            continue;
        qnt_linear_info info;
        ck_status st = qnt_check_linear(q, ws, prefix, K, N, &info, err);
        if (st != CK_OK)
            return st;
        uint64_t dev = qnt_linear_device_bytes(&info, q->exl2_widen), w = (uint64_t)K * (uint64_t)N;
        out->n_linears++;
        out->weights += w;
        out->file_bytes += info.bytes;
        out->device_bytes += dev;
        if (layer >= 0 && layer < QNT_MAX_INFO_LAYERS) {
            out->layer_weights[layer] += w;
            out->layer_file_bytes[layer] += info.bytes;
        } else if (layer < 0) {
            out->head_weights = w;
            out->head_file_bytes = info.bytes;
        }
        /* the cuda backend's workspace: fused path for every linear (the scalar kernels' float32 rows, or three
         * gathered 16-row activation copies for the tensor-core ones), the dequantized tile for all but the head */
        uint64_t fused = 16 * (uint64_t)K * 4 + 256 + 16 * (uint64_t)N * 4;
        if (3 * (16 * (uint64_t)K * 2 + 256) > fused)
            fused = 3 * (16 * (uint64_t)K * 2 + 256);
        uint64_t tile = layer >= 0 ? (uint64_t)K * (uint64_t)N * 2 + 256 + ((uint64_t)32 << 20) : 0;
        if (fused > out->workspace)
            out->workspace = fused;
        if (tile > out->workspace)
            out->workspace = tile;
        if (layer < 0)
            out->workspace += 16 * (uint64_t)N * 2; /* the lm_head's dt scratch */
    }
    return CK_OK;
}
