/* rope.c: inverse frequencies for every supported RoPE type (the formulas of the HF reference). */
#include <math.h>

#include "config.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

int cfg_rotary_dims(const cfg_config *cfg)
{
    int rot = (int)(cfg->head_dim * cfg->rope.partial_rotary_factor);
    return rot - rot % 2;
}

int cfg_context_length(const cfg_config *cfg)
{
    const cfg_rope *r = &cfg->rope;
    double n = cfg->max_position_embeddings;
    if (r->type == CFG_ROPE_DYNAMIC)
        n = cfg->max_position_embeddings * r->factor;
    else if (r->type == CFG_ROPE_YARN && r->original_max_position * r->factor > n)
        n = r->original_max_position * r->factor;
    return n > 1 << 24 ? 1 << 24 : (int)n;
}

static double yarn_mscale(double scale, double mscale)
{
    return scale <= 1.0 ? 1.0 : 0.1 * mscale * log(scale) + 1.0;
}

/* The dimension at which a frequency makes num_rot full turns over max_pos positions. */
static double yarn_correction_dim(double num_rot, int dim, double base, int max_pos)
{
    return (dim * log(max_pos / (num_rot * 2.0 * M_PI))) / (2.0 * log(base));
}

float cfg_rope_inv_freq(const cfg_config *cfg, int seq_len, float *inv_freq)
{
    const cfg_rope *r = &cfg->rope;
    int dim = cfg_rotary_dims(cfg), half = dim / 2;
    double base = r->theta;
    float mscale = 1.0f;

    if (r->type == CFG_ROPE_DYNAMIC) {
        int max_pos = cfg->max_position_embeddings;
        double len = seq_len > max_pos ? seq_len : max_pos;
        base *= pow(r->factor * len / max_pos - (r->factor - 1.0), (double)dim / (dim - 2));
    }
    for (int i = 0; i < half; i++) {
        /* float32 like the reference: base ** (2i / dim) in float, then 1 / that */
        float expo = (float)(2 * i) / (float)dim;
        inv_freq[i] = 1.0f / powf((float)base, expo);
    }

    switch (r->type) {
    case CFG_ROPE_DEFAULT:
    case CFG_ROPE_DYNAMIC:
        break;
    case CFG_ROPE_LINEAR:
        for (int i = 0; i < half; i++)
            inv_freq[i] /= (float)r->factor;
        break;
    case CFG_ROPE_LLAMA3: {
        double old_len = r->original_max_position;
        double low_wavelen = old_len / r->low_freq_factor;
        double high_wavelen = old_len / r->high_freq_factor;
        for (int i = 0; i < half; i++) {
            double f = inv_freq[i], wavelen = 2.0 * M_PI / f;
            if (wavelen > low_wavelen) {
                f /= r->factor; /* long wavelengths: fully interpolated */
            } else if (wavelen >= high_wavelen) {
                double smooth = (old_len / wavelen - r->low_freq_factor) / (r->high_freq_factor - r->low_freq_factor);
                f = (1.0 - smooth) * f / r->factor + smooth * f;
            }
            inv_freq[i] = (float)f;
        }
        break;
    }
    case CFG_ROPE_YARN: {
        double factor = r->factor;
        if (r->attention_factor > 0.0)
            mscale = (float)r->attention_factor;
        else if (r->mscale > 0.0 && r->mscale_all_dim > 0.0)
            mscale = (float)(yarn_mscale(factor, r->mscale) / yarn_mscale(factor, r->mscale_all_dim));
        else
            mscale = (float)yarn_mscale(factor, 1.0);
        double lo = yarn_correction_dim(r->beta_fast, dim, base, r->original_max_position);
        double hi = yarn_correction_dim(r->beta_slow, dim, base, r->original_max_position);
        if (r->truncate) {
            lo = floor(lo);
            hi = ceil(hi);
        }
        if (lo < 0)
            lo = 0;
        if (hi > dim - 1)
            hi = dim - 1;
        if (lo == hi)
            hi += 0.001;
        for (int i = 0; i < half; i++) {
            float ramp = (float)((i - lo) / (hi - lo));
            ramp = ramp < 0.f ? 0.f : (ramp > 1.f ? 1.f : ramp);
            float extrap = 1.0f - ramp; /* weight of the unscaled frequency */
            float f = inv_freq[i];
            inv_freq[i] = f / (float)factor * (1.0f - extrap) + f * extrap;
        }
        break;
    }
    }
    return mscale;
}
