# Dependencies from Debian's packages (tools/install-deps.sh installs them).
find_package(PkgConfig REQUIRED)
pkg_check_modules(CJSON REQUIRED IMPORTED_TARGET libcjson)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
pkg_check_modules(CMOCKA IMPORTED_TARGET cmocka)
find_package(Threads REQUIRED)

# Lua 5.4 is linked statically into the plugin and hidden by its version script, so a host that
# embeds its own Lua never clashes with ours. It is built here, position-independent, from Debian's
# source package (tools/install-deps.sh fetches it into third_party/lua5.4, Debian's patches applied):
# Debian's liblua5.4.a cannot go into a shared object.
set(CHASKI_LUA_SRC ${PROJECT_SOURCE_DIR}/third_party/lua5.4/src)
if(EXISTS ${CHASKI_LUA_SRC}/lapi.c)
  file(GLOB _chaski_lua_sources ${CHASKI_LUA_SRC}/*.c)
  list(REMOVE_ITEM _chaski_lua_sources ${CHASKI_LUA_SRC}/lua.c ${CHASKI_LUA_SRC}/luac.c)
  add_library(chaski_lua54 STATIC ${_chaski_lua_sources})
  set_target_properties(chaski_lua54 PROPERTIES POSITION_INDEPENDENT_CODE ON C_VISIBILITY_PRESET hidden)
  target_compile_options(chaski_lua54 PRIVATE -w)   # upstream code, not ours to warn about
  target_compile_definitions(chaski_lua54 PUBLIC LUA_USE_POSIX)
  target_include_directories(chaski_lua54 SYSTEM PUBLIC ${CHASKI_LUA_SRC})
  target_link_libraries(chaski_lua54 PUBLIC m)
else()
  find_path(LUA54_INCLUDE_DIR lua.h PATHS /usr/include/lua5.4 NO_DEFAULT_PATH)
  find_library(LUA54_STATIC_LIB NAMES liblua5.4.a)
  if(NOT LUA54_INCLUDE_DIR OR NOT LUA54_STATIC_LIB)
    message(FATAL_ERROR "Lua 5.4 not found: run tools/install-deps.sh")
  endif()
  message(WARNING "third_party/lua5.4 is missing (tools/install-deps.sh fetches it): using Debian's liblua5.4.a")
  add_library(chaski_lua54 STATIC IMPORTED GLOBAL)
  set_target_properties(chaski_lua54 PROPERTIES
    IMPORTED_LOCATION "${LUA54_STATIC_LIB}"
    INTERFACE_INCLUDE_DIRECTORIES "${LUA54_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "m;${CMAKE_DL_LIBS}")
endif()

if(NOT CMOCKA_FOUND)
  message(WARNING "cmocka not found: unit tests are not built (Debian: libcmocka-dev)")
endif()
