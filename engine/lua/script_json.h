/* script_json.h: JSON text to a Lua table (cJSON stays inside script_json.c). */
#ifndef SCR_SCRIPT_JSON_H
#define SCR_SCRIPT_JSON_H

#include <stddef.h>

#include <lua.h>

/* Push the value of JSON text json[len] onto L's stack (objects and arrays as
 * tables, null as nil inside containers and as nil at the top). Returns 0, or -1
 * with nothing pushed when the text is not valid JSON. Must run inside a protected
 * call (pushing may raise a memory error); the parse tree is freed either way. */
int scr_push_json(lua_State *L, const char *json, size_t len);

#endif
