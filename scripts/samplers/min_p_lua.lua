-- samplers/min_p_lua.lua: min-p in plain Lua, then the built-in draw: tokens whose
-- probability is below ctx.params.min_p (default 0.05) times the best one's are
-- pushed to -inf with ctx:set_logit. Probabilities come from logits directly:
-- p_i / p_max = exp(logit_i - logit_max).
return {
  sample = function(ctx)
    local min_p = ctx.params.min_p or 0.05
    local cands = ctx:candidates(ctx.params.window or 200)
    local cut = cands[1].logit + math.log(min_p)
    for i = 2, #cands do
      if cands[i].logit < cut then ctx:set_logit(cands[i].id, -math.huge) end
    end
    ctx:top_k(#cands)  -- drop everything outside the window, too
    return ctx:sample()
  end,
}
