-- templates/llama2.lua: Llama 2 chat. An optional leading system message goes into
-- the first user turn as <<SYS>>\n...\n<</SYS>>\n\n; user turns are
-- BOS [INST] strip(content) [/INST], assistant turns " strip(content) EOS".
-- Roles must alternate user/assistant (after the system message).
local function strip(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

return {
  render = function(messages, opts)
    local bos, eos = opts.bos_token or "", opts.eos_token or ""
    local first, system = 1, nil
    if #messages > 0 and messages[1].role == "system" then
      first, system = 2, messages[1].content
    end
    local out = {}
    for i = first, #messages do
      local m, k = messages[i], i - first   -- k: 0-based index in the loop
      if (m.role == "user") ~= (k % 2 == 0) then
        error("Conversation roles must alternate user/assistant/user/assistant/...", 0)
      end
      local content = m.content
      if k == 0 and system then
        content = "<<SYS>>\n" .. system .. "\n<</SYS>>\n\n" .. content
      end
      if m.role == "user" then
        out[#out + 1] = bos .. "[INST] " .. strip(content) .. " [/INST]"
      elseif m.role == "assistant" then
        out[#out + 1] = " " .. strip(content) .. " " .. eos
      end
    end
    return table.concat(out)
  end,

  match = function(t)
    return t:find("<<SYS>>", 1, true) ~= nil and t:find("[INST]", 1, true) ~= nil
  end,
}
