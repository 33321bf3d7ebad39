# Dependencies from Debian's packages (tools/install-deps.sh installs them).
find_package(PkgConfig REQUIRED)
pkg_check_modules(CJSON REQUIRED IMPORTED_TARGET libcjson)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
pkg_check_modules(CMOCKA IMPORTED_TARGET cmocka)
find_package(Threads REQUIRED)

# Lua 5.4 is linked statically into the plugin and hidden by its version script,
# so a host that embeds its own Lua never clashes with ours.
find_path(LUA54_INCLUDE_DIR lua.h PATHS /usr/include/lua5.4 NO_DEFAULT_PATH)
find_library(LUA54_STATIC_LIB NAMES liblua5.4.a)
if(NOT LUA54_INCLUDE_DIR OR NOT LUA54_STATIC_LIB)
  message(FATAL_ERROR "Lua 5.4 (static) not found: run tools/install-deps.sh (Debian: liblua5.4-dev)")
endif()
add_library(chaski_lua54 STATIC IMPORTED GLOBAL)
set_target_properties(chaski_lua54 PROPERTIES
  IMPORTED_LOCATION "${LUA54_STATIC_LIB}"
  INTERFACE_INCLUDE_DIRECTORIES "${LUA54_INCLUDE_DIR}"
  INTERFACE_LINK_LIBRARIES "m;${CMAKE_DL_LIBS}")

if(NOT CMOCKA_FOUND)
  message(WARNING "cmocka not found: unit tests are not built (Debian: libcmocka-dev)")
endif()
