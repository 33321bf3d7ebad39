-- samplers/default.lua: the built-in chain, exactly as the job configured it
-- (its stages in its order, then its final pick: greedy at temperature 0,
-- mirostat when enabled, else the seeded draw). Same tokens as running the chain
-- without Lua, for the same seed.
return {
  sample = function(ctx)
    ctx:chain()
    return ctx:pick()
  end,
}
