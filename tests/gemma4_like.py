"""A small chat template in Gemma 4's style, written for these tests.

Gemma 4's own templates are under the Gemma terms, not Apache-2.0 or MIT, so they are
not shipped (see ``tests/fixtures/chat_templates/LICENSES.md``). This one renders what
matters here the way they do: a past call as ``<|tool_call>call:NAME{key:value}<tool_call|>``
with values in Gemma's notation (strings between ``<|"|>`` marks, numbers and booleans
bare, ``[..]`` lists, ``{key:value}`` objects with bare keys), a past turn's reasoning
as ``<|channel>thought\\n...<channel|>``, tools declared as ``<|tool>...<tool|>``, and
the generation prompt ``<|turn>model\\n`` followed, unless thinking is enabled, by an
empty closed thought channel.
"""

from __future__ import annotations

GEMMA4_LIKE = (
    "{%- macro value(v) -%}"
    "{%- if v is string -%}{{ '<|\"|>' + v + '<|\"|>' }}"
    "{%- elif v is boolean -%}{{ 'true' if v else 'false' }}"
    "{%- elif v is none -%}null"
    "{%- elif v is mapping -%}{{ '{' }}"
    "{%- for k, x in v | dictsort -%}{{ ',' if not loop.first }}{{ k }}:{{ value(x) }}"
    "{%- endfor -%}{{ '}' }}"
    "{%- elif v is iterable -%}["
    "{%- for x in v -%}{{ ',' if not loop.first }}{{ value(x) }}{%- endfor -%}]"
    "{%- else -%}{{ v }}{%- endif -%}"
    "{%- endmacro -%}"
    "{{- bos_token -}}"
    "{%- if tools or enable_thinking -%}{{ '<|turn>system\\n' }}"
    "{%- if enable_thinking -%}{{ '<|think|>\\n' }}{%- endif -%}"
    "{%- for t in tools or [] -%}"
    "{{ '<|tool>declaration:' + t.function.name + '{description:<|\"|>' }}"
    "{{ t.function.description or '' }}{{ '<|\"|>,parameters:' }}"
    "{{ value(t.function.parameters or {}) }}{{ '}<tool|>' }}"
    "{%- endfor -%}{{ '<turn|>\\n' }}{%- endif -%}"
    "{%- for m in messages -%}"
    "{%- if m.role == 'tool' -%}"
    "{{ '<|tool_response>response:' + (m.name or 'tool') + '{value:' }}"
    "{{ value(m.content) }}{{ '}<tool_response|>' }}"
    "{%- elif m.role == 'assistant' -%}{{ '<|turn>model\\n' }}"
    "{%- if m.tool_calls and (m.reasoning_content or m.reasoning) -%}"
    "{{ '<|channel>thought\\n' + (m.reasoning_content or m.reasoning) + '\\n<channel|>' }}"
    "{%- endif -%}"
    "{%- for c in m.tool_calls or [] -%}"
    "{{ '<|tool_call>call:' + c.function.name }}"
    "{%- if c.function.arguments is mapping -%}{{ value(c.function.arguments) }}"
    "{%- else -%}{{ '{' + c.function.arguments + '}' }}{%- endif -%}"
    "{{ '<tool_call|>' }}{%- endfor -%}"
    "{{ m.content or '' }}{{ '<turn|>\\n' }}"
    "{%- else -%}{{ '<|turn>' + m.role + '\\n' + m.content + '<turn|>\\n' }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|turn>model\\n' }}"
    "{%- if not enable_thinking -%}{{ '<|channel>thought\\n<channel|>' }}{%- endif -%}"
    "{%- endif -%}"
)
