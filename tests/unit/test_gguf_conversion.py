"""The GGUF conversion reads each file once: transformers asks for a reader three times."""

from __future__ import annotations

import gguf
import pytest

from tunelab.models.registry import _gguf_read_once


def test_one_reader_per_file_and_the_library_restored_after(monkeypatch):
    opened: list[str] = []

    class Reader:
        def __init__(self, path, mode="r"):
            opened.append(str(path))

    maps: list[tuple] = []

    def name_map(arch, layers):
        maps.append((arch, layers))
        return {"arch": arch, "layers": layers}

    monkeypatch.setattr(gguf, "GGUFReader", Reader)
    monkeypatch.setattr(gguf, "get_tensor_name_map", name_map)
    with pytest.raises(RuntimeError), _gguf_read_once():
        first, again, other = gguf.GGUFReader("a.gguf"), gguf.GGUFReader("a.gguf"), gguf.GGUFReader("b.gguf")
        assert first is again and other is not first
        assert gguf.get_tensor_name_map("llama", 30) is gguf.get_tensor_name_map("llama", 30)
        gguf.get_tensor_name_map("llama", 2)
        raise RuntimeError("a conversion that fails")
    assert opened == ["a.gguf", "b.gguf"] and maps == [("llama", 30), ("llama", 2)]
    # ... and afterwards every read is a new one again, as the library has it
    assert gguf.GGUFReader is Reader and gguf.get_tensor_name_map is name_map
    gguf.GGUFReader("a.gguf")
    assert opened == ["a.gguf", "b.gguf", "a.gguf"]
