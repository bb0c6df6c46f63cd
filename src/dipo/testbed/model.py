"""A tiny causal LM in a real transformers architecture, built offline and deterministically.

`build_tiny_model(out_dir, seed)` writes a normal Hugging Face model directory (Qwen3 config,
random weights, safetensors) with a small byte-level BPE tokenizer trained offline on the
testbed's vocabulary, digits split one per token (so arithmetic is learnable), the special
tokens `<|pad|>`, `<|im_start|>`, `<|im_end|>` (= eos) and a ChatML-style chat template.
Everything loads with `AutoModelForCausalLM.from_pretrained` / `AutoTokenizer.from_pretrained`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

PAD_TOKEN = "<|pad|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"  # end of a turn; the model's eos token
SPECIAL_TOKENS = [PAD_TOKEN, IM_START, IM_END, "<tool_call>", "</tool_call>"]

# ChatML without a default system prompt; `{% generation %}` marks assistant text so TRL's
# assistant-only loss can find it.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + '<|im_end|>' }}"
    "{% endgeneration %}{% else %}{{ message['content'] + '<|im_end|>' }}{% endif %}"
    "{{ '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def chat_prompt(user_text: str) -> str:
    """The chat template rendered for one user turn plus the assistant header, as plain text.

    Identical to `tokenizer.apply_chat_template([{"role": "user", "content": user_text}],
    tokenize=False, add_generation_prompt=True)` for the testbed tokenizer (a test checks it),
    so tasks can be built without loading a tokenizer.
    """
    return f"{IM_START}user\n{user_text}{IM_END}\n{IM_START}assistant\n"


# Words the tokenizer learns whole (with and without a leading space); anything else still
# encodes, byte by byte. Kept in one place so the task generators and the tokenizer agree.
VOCAB_WORDS = """
the a an and or of to in on at for with from by is are was were has have had how many much
what now left total each more fewer times twice does do did he she they it his her their then
gets buys finds gives away eats loses sells makes bakes picks earns spends receives shares
doubles triples halves box boxes bag bags day days week weeks friend friends more less
apples pens coins books cards eggs stamps shells marbles cookies stickers candies
Tom Ann Sam Mia Ben Eva Leo Zoe Max Ivy
answer question step steps so
call tool tools function functions name arguments parameters type properties required
string integer number boolean enum description object array
get_weather set_timer convert_currency send_email book_table add_event play_song find_flight
city unit celsius fahrenheit minutes seconds amount from_currency to_currency to subject
people time date title artist song origin destination seats
Paris London Berlin Tokyo Rome Madrid Oslo Cairo Lima Delhi
USD EUR GBP JPY CHF
Monday Tuesday Wednesday Thursday Friday Saturday Sunday
weather timer convert send email book table add event play find flight
please set a for me what is like I want need can you
user assistant system
""".split()

EXTRA_SNIPPETS = [
    "\\boxed{", "}", "{", '{"name": "', '", "arguments": {', '"}}', '": ', '", "', ", ",
    "=", "+", "-", "*", "/", "(", ")", ".", "?", "\n", ": ", "[", "]",
]


@dataclass
class TinyModelConfig:
    """Size of the tiny Qwen3 model (defaults: about 0.5M parameters)."""

    hidden_size: int = field(default=96, metadata={"help": "model width"})
    num_hidden_layers: int = field(default=3, metadata={"help": "transformer blocks"})
    num_attention_heads: int = field(default=4, metadata={"help": "query heads"})
    num_key_value_heads: int = field(default=2, metadata={"help": "key/value heads (GQA)"})
    intermediate_size: int = field(default=256, metadata={"help": "MLP width"})
    max_position_embeddings: int = field(default=512, metadata={"help": "longest sequence"})
    vocab_size: int = field(default=1024, metadata={"help": "BPE vocabulary cap (256 bytes + specials + merges)"})

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                     "intermediate_size", "max_position_embeddings"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by "
                             f"num_attention_heads ({self.num_attention_heads})")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(f"num_attention_heads ({self.num_attention_heads}) must be divisible by "
                             f"num_key_value_heads ({self.num_key_value_heads})")
        if self.vocab_size < 300:
            raise ValueError(f"vocab_size must be >= 300 (256 bytes + specials + merges), got {self.vocab_size}")


def _tokenizer_corpus() -> list[str]:
    lines = []
    for word in VOCAB_WORDS:
        lines += [word, " " + word, word + ".", " " + word + "?", word.capitalize(), " " + word.capitalize()]
    lines += EXTRA_SNIPPETS * 4
    return lines


def build_tokenizer(vocab_size: int = 1024):
    """Train the byte-level BPE tokenizer offline (deterministic) and wrap it for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # Digits one per token: number tokens then compose the same way at every magnitude.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=1, special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(_tokenizer_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD_TOKEN, eos_token=IM_END, bos_token=None,
        unk_token=None, additional_special_tokens=[IM_START, "<tool_call>", "</tool_call>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"  # generation pads on the left
    fast.model_max_length = 512
    return fast


def build_tiny_model(out_dir: str | Path, seed: int = 0, config: TinyModelConfig | None = None) -> Path:
    """Write a random tiny Qwen3 causal LM plus its tokenizer to `out_dir`; return the path.

    Same `seed` and `config` give bit-identical weights (see `weights_hash`).
    """
    import torch
    from transformers import AutoModelForCausalLM, Qwen3Config

    config = config or TinyModelConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(config.vocab_size)
    model_config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        head_dim=config.hidden_size // config.num_attention_heads,
        max_position_embeddings=config.max_position_embeddings,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        use_cache=True,
    )
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(model_config, dtype=torch.float32)
    finally:
        torch.random.set_rng_state(generator_state)  # do not disturb the caller's RNG
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = None
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "dipo_tiny_model.json").write_text(json.dumps({"seed": seed, **asdict(config)}, indent=2))
    return out


def weights_hash(model_dir_or_model) -> str:
    """SHA-256 over every parameter tensor (sorted by name) of a model or a saved model dir."""
    import torch

    if isinstance(model_dir_or_model, (str, Path)):
        from safetensors.torch import load_file

        state = {}
        for path in sorted(Path(model_dir_or_model).glob("*.safetensors")):
            state.update(load_file(path))
    else:
        state = model_dir_or_model.state_dict()
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu", torch.float32).contiguous()
        digest.update(name.encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()
