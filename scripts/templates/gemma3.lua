-- templates/gemma3.lua: Gemma 3 instruct (also renders Gemma 1 and 2 conversations
-- without a system message the same way). BOS, then turns
--   <start_of_turn>ROLE\n + trim(content) + <end_of_turn>\n
-- with ROLE "model" for the assistant. A leading system message is not a turn: its
-- content (untrimmed) + "\n\n" is put before the first turn's content. The other
-- turns must alternate user/assistant, starting with user.

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
    local out = { opts.bos_token or "" }
    local prefix, first = "", 1
    if #messages > 0 and messages[1].role == "system" then
      prefix, first = messages[1].content .. "\n\n", 2
    end
    for i = first, #messages do
      local m, k = messages[i], i - first   -- k: Jinja's loop.index0
      if (m.role == "user") ~= (k % 2 == 0) then
        error("Conversation roles must alternate user/assistant/user/assistant/...", 0)
      end
      local role = m.role == "assistant" and "model" or m.role
      out[#out + 1] = "<start_of_turn>" .. role .. "\n" .. (k == 0 and prefix or "") ..
                      trim(m.content) .. "<end_of_turn>\n"
    end
    if opts.add_generation_prompt then out[#out + 1] = "<start_of_turn>model\n" end
    return table.concat(out)
  end,

  match = function(t)
    return t:find("<start_of_turn>", 1, true) ~= nil and t:find("<end_of_turn>", 1, true) ~= nil
  end,
}
