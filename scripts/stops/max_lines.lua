-- stops/max_lines.lua: stop after ctx.params.max_lines (default 1) complete lines
-- of output, or on an empty line when ctx.params.stop_on_blank_line is true.
return {
  check = function(ctx)
    local max_lines = ctx.params.max_lines or 1
    local _, n = ctx.text:gsub("\n", "")
    if n >= max_lines then return "max_lines" end
    if ctx.params.stop_on_blank_line and ctx.text:find("\n%s*\n") then
      return "blank_line"
    end
    return nil
  end,
}
