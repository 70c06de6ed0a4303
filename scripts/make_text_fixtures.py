"""Golden tokenizer and chat-template outputs from Hugging Face `transformers` (jinja2 and
the `tokenizers` Python package) on the real Qwen3 tokenizer files.

Called by make_fixtures.py; writes OUT_DIR/text/golden.json.
"""

import json
from pathlib import Path

from transformers import AutoTokenizer

TEXTS = [
    "Hello, world!",
    "  leading spaces, trailing spaces   ",
    "Tabs\tand\nnew\n\nlines\r\n",
    "Ünïcödé, 中文, 日本語, 한국어, emoji 👋🏽🎉 and math ∑∫√",
    "code: def f(x):\n    return x ** 2  # squared\n",
    "numbers 1234567890 3.14159 -42",
    "<|im_start|>user\nspecial tokens inside text<|im_end|>",
    "<think>\nreasoning\n</think>\n\nanswer",
]

WEATHER_TOOL = {
    "function": {
        "description": "Current weather for a city",
        "name": "get_weather",
        "parameters": {
            "properties": {"city": {"description": "City name", "type": "string"}},
            "required": ["city"],
            "type": "object",
        },
    },
    "type": "function",
}

CHATS = [
    ("single-user-thinking", [{"role": "user", "content": "Hello!"}], {}),
    (
        "system-no-thinking",
        [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Name a colour. 🎨"},
        ],
        {"enable_thinking": False},
    ),
    (
        "multi-turn-history-drops-thinking",
        [
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "<think>\nAdd them.\n</think>\n\n4."},
            {"role": "user", "content": "And 3+3?"},
        ],
        {},
    ),
    (
        "no-generation-prompt",
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
        ],
        {"add_generation_prompt": False},
    ),
    (
        "tools",
        [
            {"role": "system", "content": "Use tools when needed."},
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"function": {"arguments": {"city": "Paris"}, "name": "get_weather"}, "type": "function"}
                ],
            },
            {"role": "tool", "content": "{\"temp_c\": 18}"},
            {"role": "tool", "content": "{\"sky\": \"clear\"}"},
        ],
        {"tools": [WEATHER_TOOL]},
    ),
]


def build_text_fixtures(root, tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    encode = [{"text": t, "ids": tok.encode(t, add_special_tokens=False)} for t in TEXTS]
    decode = [
        {"ids": case["ids"], "skip_special": skip, "text": tok.decode(case["ids"], skip_special_tokens=skip)}
        for case in encode
        for skip in (False, True)
    ]
    chats = []
    for name, messages, opts in CHATS:
        kwargs = {"add_generation_prompt": True, **opts}
        text = tok.apply_chat_template(messages, tokenize=False, **kwargs)
        chats.append(
            {
                "name": name,
                "messages": messages,
                "opts": kwargs,
                "text": text,
                "ids": tok.encode(text, add_special_tokens=False),
            }
        )
    out = Path(root) / "text"
    out.mkdir(parents=True, exist_ok=True)
    golden = {"encode": encode, "decode": decode, "chat": chats}
    (out / "golden.json").write_text(json.dumps(golden, indent=1, ensure_ascii=False))
