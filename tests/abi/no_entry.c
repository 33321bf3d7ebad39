/* no_entry.c: a valid shared object that does not export chaski_plugin_entry. */
int chaski_not_the_entry(void);
int chaski_not_the_entry(void)
{
    return 42;
}
