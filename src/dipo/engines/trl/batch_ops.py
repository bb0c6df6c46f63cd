"""Row selection and concatenation of TRL's generation batches (dicts of padded tensors).

Dynamic sampling keeps some groups of several generation rounds and stitches them into one batch;
rounds have different widths, so 2-D tensors are re-padded: prompt-side tensors on the left (TRL
left-pads prompts), completion-side tensors on the right.
"""

from __future__ import annotations

import torch

LEFT_PADDED = {"prompt_ids", "prompt_mask"}
RIGHT_PADDED = {
    "completion_ids", "completion_mask", "old_per_token_logps", "sampling_per_token_logps",
    "ref_per_token_logps", "tool_mask", "importance_sampling_ratio",
}
PER_ROW = {"advantages"}
RECOMPUTED = {"num_items_in_batch"}  # depends on the kept rows; the caller recomputes it


def _pad_value(key: str, pad_token_id: int) -> float:
    if key in ("prompt_ids", "completion_ids"):
        return pad_token_id
    if key == "tool_mask":
        return 1  # TRL pads tool_mask with 1; completion_mask = 0 already hides those positions
    if key == "importance_sampling_ratio":
        return 1.0
    return 0


def select_rows(batch: dict, rows: torch.Tensor) -> dict:
    """The batch restricted to `rows` (1-D index tensor), keys checked as in `concat_batches`."""
    out = {}
    for key, value in batch.items():
        if key in RECOMPUTED:
            continue
        _check_key(key)
        out[key] = value[rows.to(value.device)]
    return out


def concat_batches(batches: list[dict], pad_token_id: int) -> dict:
    """Concatenate row-wise, padding 2-D tensors to the widest (left for prompts, right for completions)."""
    out = {}
    for key in batches[0]:
        if key in RECOMPUTED:
            continue
        _check_key(key)
        values = [b[key] for b in batches]
        if key in PER_ROW or values[0].dim() == 1:
            out[key] = torch.cat(values)
            continue
        width = max(v.size(1) for v in values)
        fill = _pad_value(key, pad_token_id)
        padded = []
        for v in values:
            extra = v.new_full((v.size(0), width - v.size(1)), fill)
            padded.append(torch.cat([extra, v] if key in LEFT_PADDED else [v, extra], dim=1))
        out[key] = torch.cat(padded)
    return out


def _check_key(key: str) -> None:
    if key not in LEFT_PADDED | RIGHT_PADDED | PER_ROW:
        raise NotImplementedError(
            f"dynamic sampling cannot regroup the batch field {key!r} (multimodal inputs are not supported); "
            "set dynamic_sampling=false"
        )
