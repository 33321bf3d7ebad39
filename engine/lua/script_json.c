/* script_json.c: JSON -> Lua values, for ctx.params. The only file of engine/lua
 * that sees cJSON: it parses, pushes, and deletes the tree. */
#include "script_json.h"

#include <cjson/cJSON.h>
#include <lauxlib.h>

/* The tree lives in a to-be-closed userdata slot so that a memory error while
 * pushing (a longjmp) still frees it. */
static int free_tree(lua_State *L)
{
    cJSON **box = lua_touserdata(L, 1);
    if (box && *box) {
        cJSON_Delete(*box);
        *box = NULL;
    }
    return 0;
}

static void push_value(lua_State *L, const cJSON *j)
{
    luaL_checkstack(L, 3, "JSON nested too deeply");
    if (cJSON_IsObject(j)) {
        lua_newtable(L);
        for (const cJSON *c = j->child; c; c = c->next) {
            if (cJSON_IsNull(c) || !c->string)
                continue;
            push_value(L, c);
            lua_setfield(L, -2, c->string);
        }
    } else if (cJSON_IsArray(j)) {
        lua_newtable(L);
        lua_Integer i = 1;
        for (const cJSON *c = j->child; c; c = c->next, i++) {
            if (cJSON_IsNull(c))
                continue;
            push_value(L, c);
            lua_rawseti(L, -2, i);
        }
    } else if (cJSON_IsString(j)) {
        lua_pushstring(L, j->valuestring);
    } else if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        if (d == (double)(lua_Integer)d && d >= -9007199254740992.0 && d <= 9007199254740992.0)
            lua_pushinteger(L, (lua_Integer)d);
        else
            lua_pushnumber(L, d);
    } else if (cJSON_IsBool(j)) {
        lua_pushboolean(L, cJSON_IsTrue(j));
    } else {
        lua_pushnil(L);
    }
}

int scr_push_json(lua_State *L, const char *json, size_t len)
{
    /* the box (and its __gc) exist before the tree does, so a memory error while
     * pushing leaves the tree to the collector instead of leaking it */
    cJSON **box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = NULL;
    lua_newtable(L);
    lua_pushcfunction(L, free_tree);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    *box = cJSON_ParseWithLength(json, len);
    if (!*box) {
        lua_pop(L, 1);
        return -1;
    }
    push_value(L, *box);
    cJSON_Delete(*box);
    *box = NULL;
    lua_remove(L, -2);
    return 0;
}
