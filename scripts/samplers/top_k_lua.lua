-- samplers/top_k_lua.lua: a sampler written in plain Lua, with only
-- ctx:candidates and ctx:set_logit: keep the k best (ctx.params.k, default 40),
-- scale by temperature (ctx.params.temperature, default 1), then draw with the
-- job's seeded random number (so it is reproducible).
return {
  sample = function(ctx)
    local k = ctx.params.k or 40
    local t = ctx.params.temperature or 1
    local cands = ctx:candidates(k)
    if t <= 0 then return cands[1].id end
    local maxl, total, w = cands[1].logit, 0, {}
    for i, c in ipairs(cands) do
      w[i] = math.exp((c.logit - maxl) / t)
      total = total + w[i]
    end
    local u, acc = ctx:random() * total, 0
    for i, c in ipairs(cands) do
      acc = acc + w[i]
      if u < acc then return c.id end
    end
    return cands[#cands].id
  end,
}
