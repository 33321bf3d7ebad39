/* script_lua.c: the Lua glue of scripting (see script.h).
 *
 * Invariants:
 * - One lua_State per scr_state, created with our allocator (lua_Alloc with the
 *   state as ud): the heap is capped at limits.memory_bytes.
 * - Every touch of the Lua stack that may allocate runs inside lua_pcall (an "op":
 *   a C function given its arguments as a light userdata), with a traceback
 *   message handler; nothing can reach Lua's panic handler.
 * - Each call runs under a count hook that charges the instruction budget and
 *   checks the wall-clock deadline (scr_run in script.c); once either is exceeded
 *   the hook fires on every instruction, so a script's own pcall cannot swallow it.
 * - Only text chunks load; globals come from an allow-list.
 * - The run context (the scr_state) is under one registry key (&run_key).
 */
#include "script.h"
#include "script_json.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOOK_EVERY 1000               /* instructions between budget/deadline checks */
#define ERROR_HEADROOM ((size_t)1 << 20) /* extra heap while building an error message */

struct scr_state {
    lua_State *L;
    scr_kind kind;
    char *name;
    scr_limits limits;
    size_t mem_used;
    size_t mem_headroom;
    scr_run run;
    int script_ref;       /* the table the chunk returned */
    int ctx_ref;          /* the ctx table (samplers and stop scripts) */
    /* per-step context of a sampler call */
    smp_state *smp;
    const int32_t *history;
    size_t n_history;
    uint64_t step;
    uint64_t n_random;    /* ctx:random() calls in this step */
};

static const char run_key = 'r';

static const char *kind_name(scr_kind k)
{
    switch (k) {
    case SCR_SAMPLER: return "sampler";
    case SCR_STOP: return "stop script";
    case SCR_TEMPLATE: return "template";
    }
    return "script";
}

static scr_state *run_ctx(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &run_key);
    scr_state *s = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return s;
}

/* ---- allocator, hook, message handler --------------------------------------------- */

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    scr_state *s = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        s->mem_used -= old;
        return NULL;
    }
    if (nsize > old && s->mem_used - old + nsize > s->limits.memory_bytes + s->mem_headroom)
        return NULL;
    void *p = realloc(ptr, nsize);
    if (!p)
        return NULL;
    s->mem_used = s->mem_used - old + nsize;
    return p;
}

static void count_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    void *ud;
    lua_getallocf(L, &ud);
    scr_state *s = ud;
    int why = scr_run_tick(&s->run, HOOK_EVERY);
    if (why == 0)
        return;
    lua_sethook(L, count_hook, LUA_MASKCOUNT, 1); /* from now on, every instruction fails */
    char msg[96];
    if (why == 1)
        snprintf(msg, sizeof msg, "instruction budget exceeded (%llu instructions)",
                 (unsigned long long)s->limits.instructions);
    else
        snprintf(msg, sizeof msg, "deadline exceeded (%u ms)", (unsigned)s->limits.deadline_ms);
    luaL_error(L, "%s", msg);
}

static int traceback_handler(lua_State *L)
{
    void *ud;
    lua_getallocf(L, &ud);
    scr_state *s = ud;
    lua_sethook(L, NULL, 0, 0);           /* the handler itself is not budgeted */
    s->mem_headroom = ERROR_HEADROOM;     /* room to build the message */
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* Run op(L) with arg as a light userdata, under the handler, the hook and the
 * limits. On failure fill err with CK_E_SCRIPT and the message. */
static ck_status run_op(scr_state *s, lua_CFunction op, void *arg, const char *what, ck_error *err)
{
    lua_State *L = s->L;
    int top = lua_gettop(L);
    lua_pushcfunction(L, traceback_handler);
    lua_pushcfunction(L, op);
    lua_pushlightuserdata(L, arg);
    s->mem_headroom = 0;
    scr_run_begin(&s->run, &s->limits);
    lua_sethook(L, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
    int rc = lua_pcall(L, 1, 0, top + 1);
    lua_sethook(L, NULL, 0, 0);
    ck_status st = CK_OK;
    if (rc != LUA_OK) {
        const char *m = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        if (rc == LUA_ERRMEM)
            st = ck_fail(err, CK_E_SCRIPT, "%s '%s': %s: out of memory (cap %zu bytes)%s%s",
                         kind_name(s->kind), s->name, what, s->limits.memory_bytes,
                         m ? ": " : "", m ? m : "");
        else
            st = ck_fail(err, CK_E_SCRIPT, "%s '%s': %s: %s", kind_name(s->kind), s->name, what,
                         m ? m : "(no error message)");
    }
    lua_settop(L, top);
    s->mem_headroom = 0;
    if (rc != LUA_OK) {
        /* give back what the failed call built; each cycle frees only half of the
         * unused call-info list a deep recursion left behind */
        for (int i = 0; i < 32; i++) {
            size_t before = s->mem_used;
            lua_gc(L, LUA_GCCOLLECT);
            if (s->mem_used >= before)
                break;
        }
    }
    return st;
}

/* ---- the sandbox ---------------------------------------------------------------- */

/* load(chunk [, chunkname [, mode [, env]]]) restricted to text chunks given as
 * strings. */
static int safe_load(lua_State *L)
{
    size_t len;
    const char *chunk = luaL_checklstring(L, 1, &len);
    const char *name = luaL_optstring(L, 2, "=(load)");
    const char *mode = luaL_optstring(L, 3, "t");
    if (strcmp(mode, "t") != 0) {
        luaL_pushfail(L);
        lua_pushstring(L, "only text chunks may be loaded (mode \"t\")");
        return 2;
    }
    int has_env = !lua_isnone(L, 4);
    if (luaL_loadbufferx(L, chunk, len, name, "t") != LUA_OK) {
        luaL_pushfail(L);
        lua_insert(L, -2);
        return 2;
    }
    if (has_env) {
        lua_pushvalue(L, 4);
        if (!lua_setupvalue(L, -2, 1))
            lua_pop(L, 1);
    }
    return 1;
}

static const char *const base_allowed[] = {
    "assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall", "rawequal",
    "rawget", "rawlen", "rawset", "select", "setmetatable", "tonumber", "tostring", "type",
    "xpcall", "_VERSION", NULL,
};

static int op_sandbox(lua_State *L)
{
    /* the base library writes into the current global table: build a fresh one
     * from the allow-list and make it the globals */
    luaL_requiref(L, LUA_GNAME, luaopen_base, 0);
    int old_g = lua_gettop(L);
    lua_newtable(L);
    int g = lua_gettop(L);
    for (int i = 0; base_allowed[i]; i++) {
        lua_getfield(L, old_g, base_allowed[i]);
        lua_setfield(L, g, base_allowed[i]);
    }
    lua_pushcfunction(L, safe_load);
    lua_setfield(L, g, "load");
    lua_pushvalue(L, g);
    lua_setfield(L, g, "_G");
    static const struct { const char *name; lua_CFunction open; } libs[] = {
        {LUA_STRLIBNAME, luaopen_string}, {LUA_TABLIBNAME, luaopen_table},
        {LUA_MATHLIBNAME, luaopen_math},  {LUA_UTF8LIBNAME, luaopen_utf8},
        {LUA_COLIBNAME, luaopen_coroutine},
    };
    for (size_t i = 0; i < sizeof libs / sizeof *libs; i++) {
        luaL_requiref(L, libs[i].name, libs[i].open, 0);
        lua_setfield(L, g, libs[i].name);
    }
    /* string.dump is gone from the library table itself, which is also what the
     * string metatable's __index points to */
    lua_getfield(L, g, LUA_STRLIBNAME);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);
    /* math.random starts from a fixed seed (ctx:random() is the per-step one) */
    lua_getfield(L, g, LUA_MATHLIBNAME);
    lua_getfield(L, -1, "randomseed");
    lua_pushinteger(L, 0);
    lua_call(L, 1, 0);
    lua_pop(L, 1);
    lua_pushvalue(L, g);
    lua_rawseti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    /* drop the old globals from package.loaded so nothing reaches them */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushvalue(L, g);
    lua_setfield(L, -2, LUA_GNAME);
    lua_settop(L, 0);
    return 0;
}

/* ---- the sampler ctx --------------------------------------------------------------- */

static scr_state *sampler_ctx(lua_State *L)
{
    scr_state *s = run_ctx(L);
    if (!s->smp)
        luaL_error(L, "ctx sampler methods may only be called during sample(ctx)");
    return s;
}

static int32_t check_id(lua_State *L, scr_state *s, int idx)
{
    lua_Integer id = luaL_checkinteger(L, idx);
    if (id < 0 || (size_t)id >= smp_state_n_vocab(s->smp))
        luaL_error(L, "token id %d outside the vocabulary (0..%d)", (int)id,
                   (int)smp_state_n_vocab(s->smp) - 1);
    return (int32_t)id;
}

static float opt_float(lua_State *L, int idx, float def)
{
    lua_Number v = luaL_optnumber(L, idx, def);
    if (isnan(v))
        luaL_argerror(L, idx, "NaN");
    return (float)v;
}

static int32_t opt_int(lua_State *L, int idx, int32_t def)
{
    lua_Integer v = luaL_optinteger(L, idx, def);
    if (v < INT32_MIN || v > INT32_MAX)
        luaL_argerror(L, idx, "out of range");
    return (int32_t)v;
}

static int ctx_candidates(lua_State *L)
{
    scr_state *s = sampler_ctx(L);
    size_t n_all;
    smp_cands(s->smp, &n_all);
    lua_Integer n = luaL_optinteger(L, 2, (lua_Integer)n_all);
    if (n < 0) n = 0;
    if ((size_t)n > n_all) n = (lua_Integer)n_all;
    smp_sort_prefix(s->smp, (size_t)n);
    smp_cand *c = smp_cands(s->smp, &n_all);
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 0; i < n; i++) {
        lua_createtable(L, 0, 2);
        lua_pushinteger(L, c[i].id);
        lua_setfield(L, -2, "id");
        lua_pushnumber(L, c[i].logit);
        lua_setfield(L, -2, "logit");
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int ctx_n_candidates(lua_State *L)
{
    scr_state *s = sampler_ctx(L);
    size_t n;
    smp_cands(s->smp, &n);
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
}

static int ctx_set_logit(lua_State *L)
{
    scr_state *s = sampler_ctx(L);
    int32_t id = check_id(L, s, 2);
    lua_Number v = luaL_checknumber(L, 3);
    if (isnan(v))
        return luaL_argerror(L, 3, "NaN logit");
    smp_set_logit(s->smp, id, (float)v);
    return 0;
}

static int ctx_logit(lua_State *L)
{
    scr_state *s = sampler_ctx(L);
    int32_t id = check_id(L, s, 2);
    long i = smp_find(s->smp, id);
    if (i < 0) {
        lua_pushnil(L);
    } else {
        size_t n;
        lua_pushnumber(L, smp_cands(s->smp, &n)[i].logit);
    }
    return 1;
}

static int ctx_probs(lua_State *L) /* ctx:probs(n): like candidates, with prob */
{
    scr_state *s = sampler_ctx(L);
    smp_softmax(s->smp);
    ctx_candidates(L);
    size_t n;
    smp_cand *c = smp_cands(s->smp, &n);
    lua_Integer m = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 0; i < m; i++) {
        lua_rawgeti(L, -1, i + 1);
        lua_pushnumber(L, c[i].prob);
        lua_setfield(L, -2, "prob");
        lua_pop(L, 1);
    }
    return 1;
}

static int ctx_penalties(lua_State *L)
{
    scr_state *s = sampler_ctx(L);
    const smp_params *p = smp_state_params(s->smp);
    smp_penalties(s->smp, opt_float(L, 2, p->repetition_penalty), opt_float(L, 3, p->frequency_penalty),
                  opt_float(L, 4, p->presence_penalty), opt_int(L, 5, p->penalty_range),
                  opt_float(L, 6, p->penalty_decay));
    return 0;
}

static int ctx_dry(lua_State *L)
{
    scr_state *s = sampler_ctx(L);
    const smp_params *p = smp_state_params(s->smp);
    float base = opt_float(L, 3, p->dry_base);
    if (base < 1.0f)
        return luaL_argerror(L, 3, "base must be >= 1");
    smp_dry(s->smp, opt_float(L, 2, p->dry_multiplier), base, opt_int(L, 4, p->dry_allowed_length),
            opt_int(L, 5, p->dry_range));
    return 0;
}

/* Read an array of ids (argument idx) into a GC'd scratch buffer. */
static int32_t *id_list(lua_State *L, scr_state *s, int idx, size_t *out_n)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    size_t n = (size_t)lua_rawlen(L, idx);
    int32_t *ids = lua_newuserdatauv(L, (n ? n : 1) * sizeof *ids, 0);
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, idx, (lua_Integer)i + 1);
        int isnum;
        lua_Integer v = lua_tointegerx(L, -1, &isnum);
        if (!isnum || v < 0 || (size_t)v >= smp_state_n_vocab(s->smp))
            luaL_error(L, "token list entry %d is not a token id of the vocabulary", (int)i + 1);
        ids[i] = (int32_t)v;
        lua_pop(L, 1);
    }
    *out_n = n;
    return ids;
}

static int ctx_ban(lua_State *L)
{
    scr_state *s = sampler_ctx(L);
    size_t n;
    int32_t *ids = id_list(L, s, 2, &n);
    smp_ban(s->smp, ids, n);
    return 0;
}

static int ctx_allow(lua_State *L)
{
    scr_state *s = sampler_ctx(L);
    size_t n;
    int32_t *ids = id_list(L, s, 2, &n);
    smp_allow_only(s->smp, ids, n);
    return 0;
}

static int ctx_logit_bias(lua_State *L) /* ctx:logit_bias{[id] = bias, ...} */
{
    scr_state *s = sampler_ctx(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        int isnum;
        lua_Integer id = lua_tointegerx(L, -2, &isnum);
        lua_Number b = lua_tonumber(L, -1);
        if (!isnum || id < 0 || (size_t)id >= smp_state_n_vocab(s->smp) || !lua_isnumber(L, -1) ||
            isnan(b))
            return luaL_error(L, "logit_bias: keys must be token ids, values numbers");
        smp_logit_bias one = {(int32_t)id, (float)b};
        smp_logit_bias_apply(s->smp, &one, 1);
        lua_pop(L, 1);
    }
    return 0;
}

static int ctx_bias(lua_State *L) /* the job's own bias / bans / allowed set */
{
    scr_state *s = sampler_ctx(L);
    smp_apply_stage(s->smp, SMP_STAGE_BIAS);
    return 0;
}

static int ctx_temperature(lua_State *L)
{
    scr_state *s = sampler_ctx(L);
    float t = opt_float(L, 2, smp_state_params(s->smp)->temperature);
    if (!(t > 0.0f))
        return luaL_argerror(L, 2, "temperature must be > 0 (use ctx:greedy() for 0)");
    smp_temperature(s->smp, t);
    return 0;
}

static int ctx_dynatemp(lua_State *L)
{
    scr_state *s = sampler_ctx(L);
    const smp_params *p = smp_state_params(s->smp);
    smp_dynatemp(s->smp, opt_float(L, 2, p->temperature), opt_float(L, 3, p->dynatemp_range),
                 opt_float(L, 4, p->dynatemp_exponent));
    return 0;
}

static int ctx_smoothing(lua_State *L)
{
    scr_state *s = sampler_ctx(L);
    const smp_params *p = smp_state_params(s->smp);
    smp_smoothing(s->smp, opt_float(L, 2, p->smoothing_factor), opt_float(L, 3, p->smoothing_curve));
    return 0;
}

#define UNARY_STAGE(fn, field, type_getter)                          \
    static int ctx_##fn(lua_State *L)                                \
    {                                                                \
        scr_state *s = sampler_ctx(L);                               \
        smp_##fn(s->smp, type_getter(L, 2, smp_state_params(s->smp)->field)); \
        return 0;                                                    \
    }
UNARY_STAGE(top_k, top_k, opt_int)
UNARY_STAGE(top_p, top_p, opt_float)
UNARY_STAGE(min_p, min_p, opt_float)
UNARY_STAGE(top_a, top_a, opt_float)
UNARY_STAGE(typical, typical_p, opt_float)
UNARY_STAGE(tfs, tfs_z, opt_float)
UNARY_STAGE(top_n_sigma, top_n_sigma, opt_float)
#undef UNARY_STAGE

static int ctx_xtc(lua_State *L)
{
    scr_state *s = sampler_ctx(L);
    const smp_params *p = smp_state_params(s->smp);
    smp_xtc(s->smp, opt_float(L, 2, p->xtc_threshold), opt_float(L, 3, p->xtc_probability));
    return 0;
}

static int ctx_stage(lua_State *L)
{
    scr_state *s = sampler_ctx(L);
    const char *name = luaL_checkstring(L, 2);
    int st = smp_stage_from_name(name);
    if (st < 0)
        return luaL_error(L, "no sampler stage named '%s'", name);
    smp_apply_stage(s->smp, (smp_stage)st);
    return 0;
}

static int ctx_chain(lua_State *L) /* the job's configured stages, in its order */
{
    scr_state *s = sampler_ctx(L);
    const smp_params *p = smp_state_params(s->smp);
    for (size_t i = 0; i < p->n_order; i++)
        smp_apply_stage(s->smp, p->order[i]);
    return 0;
}

static int ctx_greedy(lua_State *L)
{
    lua_pushinteger(L, smp_greedy(sampler_ctx(L)->smp));
    return 1;
}

static int ctx_sample(lua_State *L)
{
    scr_state *s = sampler_ctx(L);
    lua_pushinteger(L, smp_draw(s->smp, opt_float(L, 2, smp_state_params(s->smp)->skew)));
    return 1;
}

static int ctx_mirostat_v1(lua_State *L)
{
    scr_state *s = sampler_ctx(L);
    const smp_params *p = smp_state_params(s->smp);
    lua_pushinteger(L, smp_mirostat_v1(s->smp, opt_float(L, 2, p->mirostat_tau),
                                       opt_float(L, 3, p->mirostat_eta)));
    return 1;
}

static int ctx_mirostat_v2(lua_State *L)
{
    scr_state *s = sampler_ctx(L);
    const smp_params *p = smp_state_params(s->smp);
    lua_pushinteger(L, smp_mirostat_v2(s->smp, opt_float(L, 2, p->mirostat_tau),
                                       opt_float(L, 3, p->mirostat_eta)));
    return 1;
}

static int ctx_mirostat_mu(lua_State *L)
{
    lua_pushnumber(L, smp_state_mirostat_mu(sampler_ctx(L)->smp));
    return 1;
}

static int ctx_pick(lua_State *L) /* the job's configured final pick */
{
    scr_state *s = sampler_ctx(L);
    const smp_params *p = smp_state_params(s->smp);
    int32_t t;
    if (p->temperature <= 0.0f)
        t = smp_greedy(s->smp);
    else if (p->mirostat == 1)
        t = smp_mirostat_v1(s->smp, p->mirostat_tau, p->mirostat_eta);
    else if (p->mirostat == 2)
        t = smp_mirostat_v2(s->smp, p->mirostat_tau, p->mirostat_eta);
    else
        t = smp_draw(s->smp, p->skew);
    lua_pushinteger(L, t);
    return 1;
}

static int ctx_random(lua_State *L) /* uniform in [0, 1), a pure function of (seed, step, n) */
{
    scr_state *s = sampler_ctx(L);
    lua_pushnumber(L, smp_uniform(smp_state_params(s->smp)->seed, s->step, 2 + s->n_random++));
    return 1;
}

static const luaL_Reg sampler_methods[] = {
    {"candidates", ctx_candidates}, {"probs", ctx_probs}, {"n_candidates", ctx_n_candidates},
    {"set_logit", ctx_set_logit},   {"logit", ctx_logit},
    {"penalties", ctx_penalties},   {"dry", ctx_dry},
    {"bias", ctx_bias},             {"logit_bias", ctx_logit_bias},
    {"ban", ctx_ban},               {"allow", ctx_allow},
    {"temperature", ctx_temperature}, {"dynatemp", ctx_dynatemp},
    {"smoothing", ctx_smoothing},
    {"top_k", ctx_top_k},           {"top_p", ctx_top_p},
    {"min_p", ctx_min_p},           {"top_a", ctx_top_a},
    {"typical", ctx_typical},       {"tfs", ctx_tfs},
    {"top_n_sigma", ctx_top_n_sigma}, {"xtc", ctx_xtc},
    {"stage", ctx_stage},           {"chain", ctx_chain},
    {"greedy", ctx_greedy},         {"sample", ctx_sample},
    {"mirostat_v1", ctx_mirostat_v1}, {"mirostat_v2", ctx_mirostat_v2},
    {"mirostat_mu", ctx_mirostat_mu}, {"pick", ctx_pick},
    {"random", ctx_random},
    {NULL, NULL},
};

/* ctx.history: a read-only proxy, ctx.history[1] the oldest token, #ctx.history. */
static int history_index(lua_State *L)
{
    scr_state *s = run_ctx(L);
    int isnum;
    lua_Integer i = lua_tointegerx(L, 2, &isnum);
    if (isnum && s->smp && i >= 1 && (size_t)i <= s->n_history)
        lua_pushinteger(L, s->history[i - 1]);
    else
        lua_pushnil(L);
    return 1;
}

static int history_len(lua_State *L)
{
    scr_state *s = run_ctx(L);
    lua_pushinteger(L, s->smp ? (lua_Integer)s->n_history : 0);
    return 1;
}

static int history_newindex(lua_State *L)
{
    return luaL_error(L, "ctx.history is read-only");
}

static const luaL_Reg history_meta[] = {
    {"__index", history_index}, {"__len", history_len}, {"__newindex", history_newindex},
    {NULL, NULL},
};

/* ---- creation ----------------------------------------------------------------------- */

typedef struct create_args {
    scr_state *s;
    const char *text;
    size_t len;
    char *bad;            /* a static message when the chunk's result is wrong */
} create_args;

static int op_create(lua_State *L)
{
    create_args *a = lua_touserdata(L, 1);
    scr_state *s = a->s;
    lua_pushlightuserdata(L, s); /* the run context, under its registry key */
    lua_rawsetp(L, LUA_REGISTRYINDEX, &run_key);
    op_sandbox(L);
    /* the chunk: "@name.lua" so messages read "name.lua:LINE:" */
    const char *chunkname = lua_pushfstring(L, "@%s%s", s->name,
                                            strstr(s->name, ".lua") ? "" : ".lua");
    if (luaL_loadbufferx(L, a->text, a->len, chunkname, "t") != LUA_OK)
        return lua_error(L);
    lua_call(L, 0, 1);
    if (!lua_istable(L, -1)) {
        a->bad = "the chunk must return a table of functions";
        return 0;
    }
    const char *need = s->kind == SCR_SAMPLER ? "sample" : s->kind == SCR_STOP ? "check" : "render";
    lua_getfield(L, -1, need);
    if (!lua_isfunction(L, -1)) {
        a->bad = s->kind == SCR_SAMPLER ? "the returned table has no function 'sample'"
               : s->kind == SCR_STOP    ? "the returned table has no function 'check'"
                                        : "the returned table has no function 'render'";
        return 0;
    }
    lua_pop(L, 1);
    s->script_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    /* ctx: a table with the methods as its metatable's __index */
    lua_newtable(L);
    lua_newtable(L); /* metatable */
    if (s->kind == SCR_SAMPLER) {
        luaL_newlib(L, sampler_methods);
        lua_setfield(L, -2, "__index");
    }
    lua_setmetatable(L, -2);
    lua_newtable(L);
    lua_setfield(L, -2, "params");
    if (s->kind == SCR_SAMPLER) {
        lua_newuserdatauv(L, 0, 0);
        luaL_newlib(L, history_meta);
        lua_setmetatable(L, -2);
        lua_setfield(L, -2, "history");
    }
    s->ctx_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

ck_status scr_create(scr_kind kind, const char *name, const char *text, size_t text_len,
                     const scr_limits *limits, scr_state **out_state, ck_error *err)
{
    if (!out_state)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "script: out_state is NULL");
    *out_state = NULL;
    if (!name || (!text && text_len) || (unsigned)kind > SCR_TEMPLATE)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "script: NULL name or text, or bad kind");
    if (limits && limits->struct_size != sizeof *limits)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "script '%s': limits struct_size %zu, expected %zu",
                       name, limits->struct_size, sizeof *limits);
    scr_state *s = calloc(1, sizeof *s);
    if (!s)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "script '%s': out of memory", name);
    s->kind = kind;
    s->script_ref = s->ctx_ref = LUA_NOREF;
    if (limits)
        s->limits = *limits;
    else
        scr_limits_default(&s->limits);
    s->name = malloc(strlen(name) + 1);
    if (s->name)
        memcpy(s->name, name, strlen(name) + 1);
    s->L = s->name ? lua_newstate(capped_alloc, s) : NULL;
    if (!s->L) {
        scr_destroy(s);
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "script '%s': cannot create a Lua state", name);
    }
    create_args a = {s, text ? text : "", text_len, NULL};
    ck_status st = run_op(s, op_create, &a, "loading", err);
    if (st == CK_OK && a.bad)
        st = ck_fail(err, CK_E_SCRIPT, "%s '%s': %s", kind_name(kind), name, a.bad);
    if (st != CK_OK) {
        scr_destroy(s);
        return st;
    }
    *out_state = s;
    return CK_OK;
}

void scr_destroy(scr_state *s)
{
    if (!s)
        return;
    if (s->L)
        lua_close(s->L);
    free(s->name);
    free(s);
}

const char *scr_name(const scr_state *s) { return s->name; }
size_t scr_memory_used(const scr_state *s) { return s->mem_used; }

ck_status scr_set_limits(scr_state *s, const scr_limits *limits, ck_error *err)
{
    if (!s || !limits || limits->struct_size != sizeof *limits)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "script: bad limits");
    s->limits = *limits;
    return CK_OK;
}

/* ---- params --------------------------------------------------------------------------- */

typedef struct param_args {
    scr_state *s;
    const char *key;
    const char *json;
    size_t json_len;
    const char *str;
    double num;
    int mode;       /* 0 json, 1 number, 2 string */
    int bad_json;
} param_args;

static int op_param(lua_State *L)
{
    param_args *a = lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->s->ctx_ref);
    if (a->mode == 0) {
        if (scr_push_json(L, a->json, a->json_len) != 0 || !lua_istable(L, -1)) {
            a->bad_json = 1;
            return 0;
        }
        lua_setfield(L, -2, "params");
        return 0;
    }
    lua_getfield(L, -1, "params");
    if (a->mode == 1)
        lua_pushnumber(L, a->num);
    else
        lua_pushstring(L, a->str);
    lua_setfield(L, -2, a->key);
    return 0;
}

ck_status scr_set_params_json(scr_state *s, const char *json, size_t json_len, ck_error *err)
{
    if (!s || !json)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "script params: NULL argument");
    size_t i = 0;
    while (i < json_len && (json[i] == ' ' || json[i] == '\t' || json[i] == '\n' || json[i] == '\r'))
        i++;
    if (i == json_len || json[i] != '{')
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "%s '%s': params are not a JSON object",
                       kind_name(s->kind), s->name);
    param_args a = {.s = s, .json = json, .json_len = json_len, .mode = 0};
    ck_status st = run_op(s, op_param, &a, "setting params", err);
    if (st == CK_OK && a.bad_json)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "%s '%s': params are not a JSON object",
                       kind_name(s->kind), s->name);
    return st;
}

ck_status scr_set_param_number(scr_state *s, const char *key, double value, ck_error *err)
{
    if (!s || !key)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "script params: NULL argument");
    param_args a = {.s = s, .key = key, .num = value, .mode = 1};
    return run_op(s, op_param, &a, "setting params", err);
}

ck_status scr_set_param_string(scr_state *s, const char *key, const char *value, ck_error *err)
{
    if (!s || !key || !value)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "script params: NULL argument");
    param_args a = {.s = s, .key = key, .str = value, .mode = 2};
    return run_op(s, op_param, &a, "setting params", err);
}

/* ---- calls ------------------------------------------------------------------------------ */

/* Push script.<fn> (checked to be a function) */
static void push_script_fn(lua_State *L, scr_state *s, const char *fn)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->script_ref);
    lua_getfield(L, -1, fn);
    lua_remove(L, -2);
}

typedef struct sample_args {
    scr_state *s;
    int32_t token;
    char bad[160];
} sample_args;

static int op_sample(lua_State *L)
{
    sample_args *a = lua_touserdata(L, 1);
    scr_state *s = a->s;
    push_script_fn(L, s, "sample");
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->ctx_ref);
    lua_pushinteger(L, (lua_Integer)s->step);
    lua_setfield(L, -2, "step");
    lua_pushinteger(L, (lua_Integer)smp_state_n_vocab(s->smp));
    lua_setfield(L, -2, "n_vocab");
    lua_pushinteger(L, (lua_Integer)smp_state_params(s->smp)->seed);
    lua_setfield(L, -2, "seed");
    lua_call(L, 1, 1);
    int isnum;
    lua_Integer id = lua_tointegerx(L, -1, &isnum);
    if (lua_type(L, -1) != LUA_TNUMBER) {
        snprintf(a->bad, sizeof a->bad, "sample(ctx) returned a %s, not a token id",
                 luaL_typename(L, -1));
    } else if (!isnum) {
        lua_Number v = lua_tonumber(L, -1);
        snprintf(a->bad, sizeof a->bad, "sample(ctx) returned %s, not an integer token id",
                 isnan(v) ? "NaN" : "a non-integer number");
    } else if (id < 0 || (size_t)id >= smp_state_n_vocab(s->smp)) {
        snprintf(a->bad, sizeof a->bad, "sample(ctx) returned token id %lld, outside the vocabulary (0..%zu)",
                 (long long)id, smp_state_n_vocab(s->smp) - 1);
    } else {
        a->token = (int32_t)id;
    }
    return 0;
}

ck_status scr_sample(scr_state *s, smp_state *sampler, const float *logits,
                     const int32_t *history, size_t n_history, uint64_t step,
                     int32_t *out_token, ck_error *err)
{
    if (!s || !sampler || !out_token)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "scr_sample: NULL argument");
    if (s->kind != SCR_SAMPLER)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "script '%s' is not a sampler", s->name);
    ck_status st = smp_begin(sampler, logits, history, n_history, step, err);
    if (st != CK_OK)
        return st;
    s->smp = sampler;
    s->history = history;
    s->n_history = n_history;
    s->step = step;
    s->n_random = 0;
    sample_args a = {.s = s, .token = -1};
    st = run_op(s, op_sample, &a, "sample", err);
    s->smp = NULL;
    s->history = NULL;
    s->n_history = 0;
    if (st == CK_OK && a.bad[0])
        return ck_fail(err, CK_E_SCRIPT, "sampler '%s': %s", s->name, a.bad);
    if (st == CK_OK)
        *out_token = a.token;
    return st;
}

typedef struct stop_args {
    scr_state *s;
    const char *text;
    size_t text_len;
    int32_t token;
    uint64_t step;
    int stop;
    char *reason;
    size_t reason_cap;
    char bad[128];
} stop_args;

static int op_stop(lua_State *L)
{
    stop_args *a = lua_touserdata(L, 1);
    push_script_fn(L, a->s, "check");
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->s->ctx_ref);
    lua_pushlstring(L, a->text, a->text_len);
    lua_setfield(L, -2, "text");
    lua_pushinteger(L, a->token);
    lua_setfield(L, -2, "token");
    lua_pushinteger(L, (lua_Integer)a->step);
    lua_setfield(L, -2, "step");
    lua_call(L, 1, 1);
    int t = lua_type(L, -1);
    if (t == LUA_TNIL || (t == LUA_TBOOLEAN && !lua_toboolean(L, -1))) {
        a->stop = 0;
    } else if (t == LUA_TSTRING) {
        size_t n;
        const char *r = lua_tolstring(L, -1, &n);
        a->stop = 1;
        if (a->reason && a->reason_cap) {
            if (n >= a->reason_cap)
                n = a->reason_cap - 1;
            memcpy(a->reason, r, n);
            a->reason[n] = '\0';
        }
    } else {
        snprintf(a->bad, sizeof a->bad, "check(ctx) returned a %s, not nil or a reason string",
                 luaL_typename(L, -1));
    }
    return 0;
}

ck_status scr_stop_check(scr_state *s, const char *text, size_t text_len, int32_t token,
                         uint64_t step, int *out_stop, char *out_reason, size_t reason_cap,
                         ck_error *err)
{
    if (!s || (!text && text_len) || !out_stop)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "scr_stop_check: NULL argument");
    if (s->kind != SCR_STOP)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "script '%s' is not a stop script", s->name);
    *out_stop = 0;
    if (out_reason && reason_cap)
        out_reason[0] = '\0';
    stop_args a = {s, text ? text : "", text_len, token, step, 0, out_reason, reason_cap, {0}};
    ck_status st = run_op(s, op_stop, &a, "check", err);
    if (st == CK_OK && a.bad[0])
        return ck_fail(err, CK_E_SCRIPT, "stop script '%s': %s", s->name, a.bad);
    if (st == CK_OK)
        *out_stop = a.stop;
    return st;
}

typedef struct template_args {
    scr_state *s;
    const scr_message *msgs;
    size_t n_msgs;
    const scr_template_opts *opts;
    const char *tmpl;
    size_t tmpl_len;
    char *out;
    size_t out_len;
    int match;
    int oom;
    char bad[128];
} template_args;

static int op_render(lua_State *L)
{
    template_args *a = lua_touserdata(L, 1);
    push_script_fn(L, a->s, "render");
    lua_createtable(L, (int)a->n_msgs, 0);
    for (size_t i = 0; i < a->n_msgs; i++) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, a->msgs[i].role ? a->msgs[i].role : "");
        lua_setfield(L, -2, "role");
        lua_pushlstring(L, a->msgs[i].content ? a->msgs[i].content : "", a->msgs[i].content_len);
        lua_setfield(L, -2, "content");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_createtable(L, 0, 3);
    lua_pushboolean(L, a->opts && a->opts->add_generation_prompt);
    lua_setfield(L, -2, "add_generation_prompt");
    if (a->opts && a->opts->bos_token) {
        lua_pushstring(L, a->opts->bos_token);
        lua_setfield(L, -2, "bos_token");
    }
    if (a->opts && a->opts->eos_token) {
        lua_pushstring(L, a->opts->eos_token);
        lua_setfield(L, -2, "eos_token");
    }
    lua_call(L, 2, 1);
    if (lua_type(L, -1) != LUA_TSTRING) {
        snprintf(a->bad, sizeof a->bad, "render() returned a %s, not a string", luaL_typename(L, -1));
        return 0;
    }
    size_t n;
    const char *r = lua_tolstring(L, -1, &n);
    a->out = malloc(n + 1);
    if (!a->out) {
        a->oom = 1;
        return 0;
    }
    memcpy(a->out, r, n);
    a->out[n] = '\0';
    a->out_len = n;
    return 0;
}

ck_status scr_template_render(scr_state *s, const scr_message *messages, size_t n_messages,
                              const scr_template_opts *opts, char **out_text, size_t *out_len,
                              ck_error *err)
{
    if (!s || (!messages && n_messages) || !out_text)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "scr_template_render: NULL argument");
    if (s->kind != SCR_TEMPLATE)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "script '%s' is not a template", s->name);
    *out_text = NULL;
    template_args a = {.s = s, .msgs = messages, .n_msgs = n_messages, .opts = opts};
    ck_status st = run_op(s, op_render, &a, "render", err);
    if (st != CK_OK) {
        free(a.out);
        return st;
    }
    if (a.bad[0])
        return ck_fail(err, CK_E_SCRIPT, "template '%s': %s", s->name, a.bad);
    if (a.oom)
        return ck_fail(err, CK_E_OUT_OF_MEMORY, "template '%s': out of memory", s->name);
    *out_text = a.out;
    if (out_len)
        *out_len = a.out_len;
    return CK_OK;
}

static int op_match(lua_State *L)
{
    template_args *a = lua_touserdata(L, 1);
    push_script_fn(L, a->s, "match");
    if (lua_isnil(L, -1)) {
        a->match = 0;
        return 0;
    }
    lua_pushlstring(L, a->tmpl, a->tmpl_len);
    lua_call(L, 1, 1);
    a->match = lua_toboolean(L, -1);
    return 0;
}

ck_status scr_template_match(scr_state *s, const char *chat_template, size_t template_len,
                             int *out_match, ck_error *err)
{
    if (!s || !chat_template || !out_match)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "scr_template_match: NULL argument");
    if (s->kind != SCR_TEMPLATE)
        return ck_fail(err, CK_E_INVALID_ARGUMENT, "script '%s' is not a template", s->name);
    *out_match = 0;
    template_args a = {.s = s, .tmpl = chat_template, .tmpl_len = template_len};
    ck_status st = run_op(s, op_match, &a, "match", err);
    if (st == CK_OK)
        *out_match = a.match;
    return st;
}
