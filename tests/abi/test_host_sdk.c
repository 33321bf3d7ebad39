/* test_host_sdk.c: opening plugins: every typed error, negotiation, several plugins at once. */
#include <sys/stat.h>

#include "abi_test.h"

static char g_tmp[64];

static int setup(void **state)
{
    (void)state;
    snprintf(g_tmp, sizeof g_tmp, "/tmp/chaski-host-XXXXXX");
    assert_non_null(mkdtemp(g_tmp));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char p[128];
    snprintf(p, sizeof p, "%s/not-a-plugin.so", g_tmp);
    unlink(p);
    snprintf(p, sizeof p, "%s/subdir", g_tmp);
    rmdir(p);
    rmdir(g_tmp);
    assert_int_equal(chaski_host_plugins_open(), 0);
    return 0;
}

static void expect_error(const char *path, chaski_status want, const char *needle1, const char *needle2)
{
    chaski_host_plugin *p = (chaski_host_plugin *)&want;
    char err[1024] = "";
    chaski_status st = chaski_host_open(path, &p, err, sizeof err);
    if (st != want)
        fail_msg("open %s: status %d, expected %d (%s)", path, (int)st, (int)want, err);
    assert_null(p);
    assert_non_null(strstr(err, path));
    if (needle1 && !strstr(err, needle1))
        fail_msg("message '%s' lacks '%s'", err, needle1);
    if (needle2 && !strstr(err, needle2))
        fail_msg("message '%s' lacks '%s'", err, needle2);
}

static void missing_file_should_be_not_found(void **state)
{
    (void)state;
    char p[128];
    snprintf(p, sizeof p, "%s/nope/libchaski.so", g_tmp);
    expect_error(p, CHASKI_E_NOT_FOUND, "no such file", NULL);
}

static void text_file_or_directory_should_be_not_a_shared_object(void **state)
{
    (void)state;
    char p[128];
    snprintf(p, sizeof p, "%s/not-a-plugin.so", g_tmp);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs("this is not ELF\n", f);
    fclose(f);
    expect_error(p, CHASKI_E_NOT_SHARED_OBJECT, "not a", "ELF");
    snprintf(p, sizeof p, "%s/subdir", g_tmp);
    assert_int_equal(mkdir(p, 0755), 0);
    expect_error(p, CHASKI_E_NOT_SHARED_OBJECT, "not a", NULL);
}

static void object_without_entry_should_be_no_entry(void **state)
{
    (void)state;
    expect_error(CHASKI_TEST_NO_ENTRY, CHASKI_E_NO_ENTRY, "chaski_plugin_entry", NULL);
}

static void plugin_answering_major_2_should_be_refused_with_both_versions(void **state)
{
    (void)state;
    expect_error(CHASKI_TEST_FAKE_V2, CHASKI_E_VERSION, "2.0", "1.0");
}

static void table_shorter_than_1_0_should_be_refused(void **state)
{
    (void)state;
    expect_error(CHASKI_TEST_FAKE_SHORT, CHASKI_E_VERSION, "shorter", NULL);
}

static void plugin_refusing_the_range_should_pass_its_reason_on(void **state)
{
    (void)state;
    expect_error(CHASKI_TEST_FAKE_REFUSE, CHASKI_E_VERSION, "9.0", "1.0");
}

static void real_plugin_should_refuse_a_host_speaking_only_major_2(void **state)
{
    (void)state;
    chaski_host_plugin *p = NULL;
    char err[1024];
    assert_int_equal(chaski_host_open_range(CHASKI_TEST_PLUGIN, CHASKI_ABI_VERSION(2, 0), CHASKI_ABI_VERSION(2, 3),
                                            &p, err, sizeof err),
                     CHASKI_E_VERSION);
    assert_null(p);
    assert_non_null(strstr(err, "2.0..2.3")); /* the host's range */
    assert_non_null(strstr(err, "1.0"));      /* the plugin's */
}

static void real_plugin_should_negotiate_and_a_short_table_hides_newer_entries(void **state)
{
    (void)state;
    chaski_host_plugin *p = NULL;
    char err[1024];
    /* a host that speaks 1.0 .. 1.7 gets the plugin's 1.x table */
    assert_int_equal(chaski_host_open_range(CHASKI_TEST_PLUGIN, CHASKI_ABI_VERSION(1, 0), CHASKI_ABI_VERSION(1, 7), &p,
                                            err, sizeof err),
                     CHASKI_OK);
    const chaski_api *api = chaski_host_api(p);
    assert_int_equal(CHASKI_ABI_VERSION_MAJOR(chaski_host_version(p)), 1);
    assert_string_equal(api->plugin_name, "chaski");
    assert_true(CHASKI_API_HAS(api, score));
    /* what an older plugin looks like to a newer host: entries past struct_size do not exist */
    chaski_api older = *api;
    older.struct_size = (uint32_t)offsetof(chaski_api, score_params_default);
    assert_true(CHASKI_API_HAS(&older, job_last_error));
    assert_false(CHASKI_API_HAS(&older, score));
    assert_false(CHASKI_API_HAS(&older, score_params_default));
    chaski_host_close(p);
}

static void several_plugins_should_be_open_at_once_and_found_on_a_search_path(void **state)
{
    (void)state;
    char err[1024];
    chaski_host_plugin *a = NULL, *b = NULL, *c = NULL;
    assert_int_equal(chaski_host_open(CHASKI_TEST_PLUGIN, &a, err, sizeof err), CHASKI_OK);
    char copy[128];
    snprintf(copy, sizeof copy, "%s/libchaski-copy.so", g_tmp);
    abi_copy_file(CHASKI_TEST_PLUGIN, copy);
    assert_int_equal(chaski_host_open(copy, &b, err, sizeof err), CHASKI_OK);
    assert_ptr_not_equal(chaski_host_api(a), chaski_host_api(b)); /* two distinct objects */
    char search[512];
    snprintf(search, sizeof search, "%s:%s", g_tmp, CHASKI_TEST_PLUGIN_DIR);
    assert_int_equal(chaski_host_open_search(NULL, search, &c, err, sizeof err), CHASKI_OK);
    assert_int_equal(chaski_host_plugins_open(), 3);
    assert_non_null(strstr(chaski_host_path(c), "libchaski.so"));
    chaski_host_close(a);
    chaski_host_close(b);
    chaski_host_close(c);
    assert_int_equal(chaski_host_plugins_open(), 0);
    chaski_host_plugin *d = (chaski_host_plugin *)&a;
    assert_int_equal(chaski_host_open_search("libnothing.so", g_tmp, &d, err, sizeof err), CHASKI_E_NOT_FOUND);
    assert_null(d);
    assert_non_null(strstr(err, g_tmp));
    unlink(copy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(missing_file_should_be_not_found),
        cmocka_unit_test(text_file_or_directory_should_be_not_a_shared_object),
        cmocka_unit_test(object_without_entry_should_be_no_entry),
        cmocka_unit_test(plugin_answering_major_2_should_be_refused_with_both_versions),
        cmocka_unit_test(table_shorter_than_1_0_should_be_refused),
        cmocka_unit_test(plugin_refusing_the_range_should_pass_its_reason_on),
        cmocka_unit_test(real_plugin_should_refuse_a_host_speaking_only_major_2),
        cmocka_unit_test(real_plugin_should_negotiate_and_a_short_table_hides_newer_entries),
        cmocka_unit_test(several_plugins_should_be_open_at_once_and_found_on_a_search_path),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
