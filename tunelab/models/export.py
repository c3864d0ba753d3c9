"""Ship a run: merge the adapter into plain safetensors, or write a GGUF file for llama.cpp.

GGUF support is deliberately narrow, and says so: Llama-architecture models (SmolLM2 and the
tiny test models) with a byte-level BPE tokenizer, written as F32, F16 or Q8_0. Every export is
read back with `gguf.GGUFReader`, each tensor dequantized and compared with the merged weights
within the format's rounding bound; the export fails loudly if any tensor is off.
Not supported: other architectures (Gemma, Qwen, ...), SentencePiece tokenizers, K-quants,
and LoRA adapters as separate GGUF files.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from tunelab import rundir

log = logging.getLogger(__name__)

GGUF_TYPES = ("f32", "f16", "q8_0")
EXPORT_INFO = "tunelab_export.json"


class ExportError(RuntimeError):
    """An export that cannot be done or did not verify; the message says which and why."""


def _check_out(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise ExportError(f"{out_dir} exists and is not empty; pass --force to overwrite")


def export_merged(spec: str, out_dir: str | Path, *, force: bool = False) -> Path:
    """Fold the adapter of `spec` into its base and save a plain transformers model directory."""
    from tunelab.models.load import describe, load_model

    out_dir = Path(out_dir)
    _check_out(out_dir, force)
    where = describe(spec)
    model, tokenizer = load_model(spec, merge=True)
    with rundir.publish_dir(out_dir) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        rundir.write_json(staging / EXPORT_INFO, {"format": "merged", "source": str(spec), **where})
    return out_dir


def _permute(weights: Any, n_head: int) -> Any:
    """HF's rotary layout -> llama.cpp's (interleaved halves per head), as llama.cpp's converter does."""
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def gguf_tensors(model: Any) -> dict[str, Any]:
    """The merged model's weights as float32 numpy arrays under GGUF (llama.cpp) names."""
    import gguf

    config = model.config
    if config.model_type != "llama":
        raise ExportError(
            f"GGUF export supports the Llama architecture only; this model is '{config.model_type}'. "
            "Export --format merged and convert with llama.cpp's convert_hf_to_gguf.py instead."
        )
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    out: dict[str, Any] = {}
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight" and config.tie_word_embeddings:
            continue  # llama.cpp reuses token_embd when output.weight is absent
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ExportError(f"no GGUF name for tensor '{hf_name}'")
        array = tensor.detach().float().cpu().numpy()
        if hf_name.endswith("q_proj.weight"):
            array = _permute(array, config.num_attention_heads)
        elif hf_name.endswith("k_proj.weight"):
            array = _permute(array, config.num_key_value_heads)
        out[name] = array
    return out


def _add_metadata(writer: Any, model: Any, name: str, file_type: int) -> None:
    config = model.config
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(
        getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    )
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    rope = getattr(config, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") != "default":
        raise ExportError(f"GGUF export does not handle rope scaling '{rope.get('rope_type')}'")
    writer.add_rope_freq_base(float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))))
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(file_type)


def _add_tokenizer(writer: Any, tokenizer: Any, tokenizer_dir: Path, vocab_size: int, pre: str) -> None:
    import gguf

    if not (tokenizer_dir / "tokenizer.json").exists():
        raise ExportError(f"GGUF export needs a fast tokenizer (tokenizer.json) in {tokenizer_dir}")
    model_type = __import__("json").loads((tokenizer_dir / "tokenizer.json").read_text())["model"]["type"]
    if model_type != "BPE":
        raise ExportError(f"GGUF export supports BPE tokenizers only; this one is {model_type}")
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(tokenizer_dir, load_merges=True, n_vocab=vocab_size)
    if not special.merges:
        raise ExportError(f"no BPE merges found in {tokenizer_dir / 'tokenizer.json'}")
    special.add_to_gguf(writer, quiet=True)
    if special.chat_template is None and tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)


def _encode(array: Any, qtype: Any) -> tuple[Any, Any]:
    import gguf
    import numpy as np

    if array.ndim == 1 or qtype == gguf.GGMLQuantizationType.F32:
        return array.astype(np.float32), gguf.GGMLQuantizationType.F32  # norms stay F32, as in llama.cpp
    if qtype == gguf.GGMLQuantizationType.F16:
        return array.astype(np.float16), qtype
    return gguf.quants.quantize(array, qtype), qtype


def verify_gguf(path: str | Path, expected: dict[str, Any]) -> dict[str, Any]:
    """Read `path` back, dequantize every tensor and compare with `expected` within the format's bound."""
    import gguf
    import numpy as np

    reader = gguf.GGUFReader(path)
    found = {t.name: t for t in reader.tensors}
    if set(found) != set(expected):
        raise ExportError(
            f"{path}: tensors differ from the model: missing {sorted(set(expected) - set(found))[:5]}, "
            f"extra {sorted(set(found) - set(expected))[:5]}"
        )
    worst: dict[str, float] = {}
    for name, tensor in found.items():
        source = expected[name]
        restored = gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(source.shape).astype(np.float64)
        error = np.abs(restored - source)
        kind = tensor.tensor_type.name
        if kind == "F32":
            bound = np.zeros_like(error)
        elif kind == "F16":  # half a unit in the last place, plus f16's subnormal step
            bound = np.abs(source) * 2.0**-11 + 2.0**-25
        else:  # Q8_0: a block of 32 shares one f16 scale amax/127; rounding is at most half a step
            blocks = np.abs(source).reshape(-1, 32).max(axis=1, keepdims=True)
            # q is rounded with the exact scale, then the scale is stored in f16 (2^-11 relative, times q<=127).
            bound = np.broadcast_to(blocks / 127 * (0.5 + 127 * 2.0**-11) * 1.001, (blocks.shape[0], 32)).reshape(
                source.shape
            )
        if np.any(error > bound):
            raise ExportError(f"{path}: tensor {name} ({kind}) does not round-trip: max error {error.max():.3g}")
        worst[kind] = max(worst.get(kind, 0.0), float(error.max()))
    return {"tensors": len(found), "max_abs_error_by_type": worst, "verified": True}


def export_gguf(
    spec: str, out_dir: str | Path, *, dtype: str = "f16", tokenizer_pre: str = "smollm", force: bool = False
) -> Path:
    """Write `out_dir/model-<dtype>.gguf` from the merged model of `spec`, verified by reading it back.

    `tokenizer_pre` is llama.cpp's name for the pre-tokenizer regex; "smollm" is right for the
    SmolLM2 family (the default model). Other BPE tokenizers need their own name.
    """
    import gguf

    from tunelab.models.load import describe, load_model

    if dtype not in GGUF_TYPES:
        raise ExportError(f"unsupported GGUF type '{dtype}'; supported: {', '.join(GGUF_TYPES)}")
    qtype = {
        "f32": gguf.GGMLQuantizationType.F32,
        "f16": gguf.GGMLQuantizationType.F16,
        "q8_0": gguf.GGMLQuantizationType.Q8_0,
    }[dtype]
    file_type = {
        "f32": gguf.LlamaFileType.ALL_F32,
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
    }[dtype]
    out_dir = Path(out_dir)
    where = describe(spec)
    model, tokenizer = load_model(spec, merge=True)
    tensors = gguf_tensors(model)
    _check_out(out_dir, force)
    name = f"model-{dtype}.gguf"
    with rundir.publish_dir(out_dir) as staging:
        tokenizer.save_pretrained(staging / "tokenizer")  # one place that holds tokenizer.json + chat template
        path = staging / name
        writer = gguf.GGUFWriter(path, "llama")
        _add_metadata(writer, model, Path(str(spec)).name, int(file_type))
        _add_tokenizer(writer, tokenizer, staging / "tokenizer", model.config.vocab_size, tokenizer_pre)
        for tensor_name, array in tensors.items():
            data, raw = _encode(array, qtype)
            writer.add_tensor(
                tensor_name,
                data,
                raw_dtype=raw if raw not in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16) else None,
            )
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        shutil.rmtree(staging / "tokenizer")
        report = verify_gguf(path, tensors)
        rundir.write_json(
            staging / EXPORT_INFO,
            {"format": "gguf", "type": dtype, "file": name, "source": str(spec), **where, "round_trip": report},
        )
    log.info("wrote %s: %s", name, report)
    return out_dir / name


def export(spec: str, out_dir: str | Path, fmt: str, *, dtype: str = "f16", force: bool = False) -> Path:
    if fmt == "merged":
        return export_merged(spec, out_dir, force=force)
    if fmt == "gguf":
        return export_gguf(spec, out_dir, dtype=dtype, force=force)
    raise ExportError(f"unknown export format '{fmt}'; use merged or gguf")
