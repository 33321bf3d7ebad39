-- samplers/mirostat.lua: Mirostat v2 (target surprise tau, learning rate eta)
-- after penalties and the job's bias; ctx.params.tau / ctx.params.eta override
-- the job's mirostat settings. mu persists in the job's sampler state.
return {
  sample = function(ctx)
    ctx:bias()
    ctx:penalties()
    ctx:temperature()
    local p = ctx.params
    return ctx:mirostat_v2(p.tau, p.eta)
  end,
}
