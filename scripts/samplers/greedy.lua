-- samplers/greedy.lua: the most likely token, after the job's bias and bans.
return {
  sample = function(ctx)
    ctx:bias()
    return ctx:greedy()
  end,
}
