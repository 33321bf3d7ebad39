/* safetensors.h: mmap'd safetensors files, validated by every rule of FORMATS.md (prefix st_).
 *
 * st_open validates the whole header before returning: after it succeeds, every tensor's
 * [begin, end) lies inside the data buffer, the tensors tile the buffer exactly, and
 * byte sizes match dtype x shape. Data pointers stay valid until st_close / st_set_close. */
#ifndef CK_SAFETENSORS_H
#define CK_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "ck_error.h"

typedef enum st_dtype {
    ST_BOOL, ST_U8, ST_I8, ST_I16, ST_U16, ST_F16, ST_BF16, ST_I32, ST_U32, ST_F32, ST_F64,
    ST_I64, ST_U64, ST_F8_E4M3, ST_F8_E5M2, ST_DTYPE_COUNT_
} st_dtype;

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER 100000000ull

typedef struct st_tensor {
    const char *name;
    st_dtype dtype;
    int n_dims;
    int64_t shape[ST_MAX_DIMS];
    uint64_t n_elems;
    uint64_t n_bytes;
    const uint8_t *data;        /* inside the mapping; may be misaligned for its dtype */
    const char *file_path;      /* the file it came from (for messages) */
} st_tensor;

typedef struct st_file st_file;

const char *st_dtype_name(st_dtype dt);
size_t st_dtype_size(st_dtype dt);

/* Open and validate one file. */
ck_status st_open(const char *path, st_file **out, ck_error *err);
/* Validate an in-memory image (the fuzz target and the tests use it). The buffer must outlive the file. */
ck_status st_open_memory(const uint8_t *buf, size_t len, const char *name, st_file **out, ck_error *err);
void st_close(st_file *f);
size_t st_count(const st_file *f);
const st_tensor *st_at(const st_file *f, size_t i);
const st_tensor *st_find(const st_file *f, const char *name);

/* A model's weights: dir/model.safetensors, or the shards that dir/model.safetensors.index.json
 * names. Pickle checkpoints (*.bin, *.pt, *.pth, *.ckpt) are refused with the reason. */
typedef struct st_set st_set;
ck_status st_set_open_dir(const char *dir, st_set **out, ck_error *err);
void st_set_close(st_set *s);
const st_tensor *st_set_find(const st_set *s, const char *name);
size_t st_set_count(const st_set *s);
const st_tensor *st_set_at(const st_set *s, size_t i);

/* Convert n elements of a F32/F16/BF16 tensor starting at element `first` to float32
 * (works on misaligned data). */
ck_status st_to_f32(const st_tensor *t, uint64_t first, uint64_t n, float *out, ck_error *err);

#endif
