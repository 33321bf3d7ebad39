-- stops/repetition.lua: stop when the last line repeats an earlier line verbatim
-- (a cheap loop detector), once ctx.step >= ctx.params.min_steps (default 16).
return {
  check = function(ctx)
    if ctx.step < (ctx.params.min_steps or 16) then return nil end
    local text = ctx.text
    if text:sub(-1) ~= "\n" then return nil end
    local lines = {}
    for line in text:gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
    local last = lines[#lines]
    if not last or #last < (ctx.params.min_line_length or 8) then return nil end
    for i = 1, #lines - 1 do
      if lines[i] == last then return "repeated_line" end
    end
    return nil
  end,
}
