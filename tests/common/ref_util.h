/* ref_util.h: small helpers shared by the tests that compare with reference outputs
 * (transformers fixtures: token-id lists in JSON, float32 logits files). Header-only. */
#ifndef CK_TEST_REF_UTIL_H
#define CK_TEST_REF_UTIL_H

#include <cJSON.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* ||a - b|| / ||b|| in double. */
/* splitmix64's finaliser: seeded test inputs without a random-number library. */
static inline uint64_t ref_mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline double rel_l2(const float *a, const float *b, size_t n)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0.0 ? sqrt(num / den) : sqrt(num);
}

/* A JSON array of integers as a malloc'd int32 array (*n elements; never NULL). */
static inline int32_t *json_ids(const cJSON *arr, int *n)
{
    *n = cJSON_GetArraySize(arr);
    int32_t *ids = malloc((size_t)(*n ? *n : 1) * sizeof *ids);
    for (int i = 0; ids && i < *n; i++)
        ids[i] = (int32_t)cJSON_GetArrayItem(arr, i)->valuedouble;
    return ids;
}

/* n little-endian float32 values from dir/name (malloc'd), or NULL if the file is short or absent. */
static inline float *read_f32(const char *dir, const char *name, size_t n)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    float *buf = malloc(n * sizeof *buf);
    if (buf && fread(buf, sizeof *buf, n, fp) != n) {
        free(buf);
        buf = NULL;
    }
    fclose(fp);
    return buf;
}

/* dir/reference.json parsed (the caller deletes it), or NULL if absent or not JSON. */
static inline cJSON *read_reference(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/reference.json", dir);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    cJSON *root = NULL;
    if (fseek(fp, 0, SEEK_END) == 0) {
        long size = ftell(fp);
        char *text = size > 0 ? malloc((size_t)size) : NULL;
        rewind(fp);
        if (text && fread(text, 1, (size_t)size, fp) == (size_t)size)
            root = cJSON_ParseWithLength(text, (size_t)size);
        free(text);
    }
    fclose(fp);
    return root;
}

#endif
