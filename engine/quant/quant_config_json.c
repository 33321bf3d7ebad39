/* quant_config_json.c: the quantization_config block of config.json (the only cJSON user of engine/quant).
 * GPTQ: quant_method "gptq", bits 4 | 8, group_size a power of two or -1, desc_act, sym,
 *       checkpoint_format "gptq" | "gptq_v2" (absent: gptq).
 * EXL2: quant_method "exl2", bits and head_bits informational (each layer's q_groups rule). */
#include "quant.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static const cJSON *item(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return (v && !cJSON_IsNull(v)) ? v : NULL;
}

static ck_status get_int(const cJSON *obj, const char *key, const char *path, int *out, int required, ck_error *err)
{
    const cJSON *v = item(obj, key);
    if (!v) {
        if (required)
            return ck_fail(err, CK_E_CONFIG, "%s: quantization_config.%s is required", path, key);
        return CK_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > 1e9)
        return ck_fail(err, CK_E_CONFIG, "%s: quantization_config.%s must be an integer", path, key);
    *out = (int)v->valuedouble;
    return CK_OK;
}

static ck_status get_bool(const cJSON *obj, const char *key, const char *path, bool *out, ck_error *err)
{
    const cJSON *v = item(obj, key);
    if (!v)
        return CK_OK;
    if (!cJSON_IsBool(v))
        return ck_fail(err, CK_E_CONFIG, "%s: quantization_config.%s must be true or false", path, key);
    *out = cJSON_IsTrue(v);
    return CK_OK;
}

static ck_status get_num(const cJSON *obj, const char *key, const char *path, double *out, ck_error *err)
{
    const cJSON *v = item(obj, key);
    if (!v)
        return CK_OK;
    if (!cJSON_IsNumber(v))
        return ck_fail(err, CK_E_CONFIG, "%s: quantization_config.%s must be a number", path, key);
    *out = v->valuedouble;
    return CK_OK;
}

static ck_status parse_gptq(const cJSON *qc, const char *path, qnt_config *out, ck_error *err)
{
    ck_status st;
    out->format = QNT_GPTQ;
    out->group_size = -1;
    out->sym = true;
    if ((st = get_int(qc, "bits", path, &out->bits, 1, err)) != CK_OK ||
        (st = get_int(qc, "group_size", path, &out->group_size, 0, err)) != CK_OK ||
        (st = get_bool(qc, "desc_act", path, &out->desc_act, err)) != CK_OK ||
        (st = get_bool(qc, "sym", path, &out->sym, err)) != CK_OK)
        return st;
    if (out->bits != 4 && out->bits != 8) {
        if (out->bits == 2 || out->bits == 3)
            return ck_fail(err, CK_E_UNSUPPORTED, "%s: quantization_config.bits %d: GPTQ %d-bit is not supported "
                           "(4 or 8)", path, out->bits, out->bits);
        return ck_fail(err, CK_E_CONFIG, "%s: quantization_config.bits %d: GPTQ bits must be 4 or 8", path, out->bits);
    }
    int g = out->group_size;
    if (g != -1 && (g <= 0 || (g & (g - 1)) != 0))
        return ck_fail(err, CK_E_CONFIG, "%s: quantization_config.group_size %d must be a power of two or -1", path, g);
    const cJSON *fmt = item(qc, "checkpoint_format");
    if (fmt) {
        if (!cJSON_IsString(fmt))
            return ck_fail(err, CK_E_CONFIG, "%s: quantization_config.checkpoint_format must be a string", path);
        if (!strcmp(fmt->valuestring, "gptq_v2"))
            out->v2 = true;
        else if (strcmp(fmt->valuestring, "gptq") != 0)
            return ck_fail(err, CK_E_UNSUPPORTED, "%s: quantization_config.checkpoint_format '%.64s' is not supported "
                           "(gptq, gptq_v2)", path, fmt->valuestring);
    }
    return CK_OK;
}

ck_status qnt_parse_config(const char *json, size_t len, const char *path, qnt_config *out, ck_error *err)
{
    memset(out, 0, sizeof *out);
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root)
        return ck_fail(err, CK_E_CONFIG, "%s: not valid JSON", path);
    ck_status st = CK_OK;
    const cJSON *qc = cJSON_IsObject(root) ? item(root, "quantization_config") : NULL;
    if (!cJSON_IsObject(root)) {
        st = ck_fail(err, CK_E_CONFIG, "%s: must be a JSON object", path);
    } else if (!qc) {
        const cJSON *tc = item(root, "text_config"); /* vision-language files nest the text model */
        qc = tc && cJSON_IsObject(tc) ? item(tc, "quantization_config") : NULL;
    }
    if (st == CK_OK && qc) {
        const cJSON *m = item(qc, "quant_method");
        if (!cJSON_IsObject(qc))
            st = ck_fail(err, CK_E_CONFIG, "%s: quantization_config must be an object", path);
        else if (!m || !cJSON_IsString(m))
            st = ck_fail(err, CK_E_CONFIG, "%s: quantization_config.quant_method must be a string", path);
        else if (!strcmp(m->valuestring, "gptq"))
            st = parse_gptq(qc, path, out, err);
        else if (!strcmp(m->valuestring, "exl2")) {
            out->format = QNT_EXL2;
            if ((st = get_num(qc, "bits", path, &out->exl2_bits, err)) == CK_OK)
                st = get_num(qc, "head_bits", path, &out->exl2_head_bits, err);
        } else
            st = ck_fail(err, CK_E_UNSUPPORTED, "%s: quantization_config.quant_method '%.64s' is not supported "
                         "(gptq, exl2)", path, m->valuestring);
    }
    cJSON_Delete(root);
    if (st != CK_OK)
        memset(out, 0, sizeof *out);
    return st;
}
