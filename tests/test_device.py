"""The fast-mode guards: bf16 on a CPU without bf16 instructions, compile without a compiler."""

import pytest

from leangpt import device
from leangpt.errors import ConfigError


def test_bf16_on_a_cpu_without_bf16_instructions_is_refused_in_one_line(monkeypatch):
    monkeypatch.setattr(device, "cpu_has_bf16_instructions", lambda: False)
    monkeypatch.delenv(device.SLOW_BF16_OVERRIDE, raising=False)
    with pytest.raises(ConfigError) as info:
        device.resolve("cpu", "bfloat16")
    assert "12-16x slower" in str(info.value) and "--dtype=float32" in str(info.value)
    assert "\n" not in str(info.value)
    assert device.resolve("cpu", "float32").dtype == "float32"
    assert device.resolve("cpu", "bfloat16", check_speed=False).dtype == "bfloat16"  # memory estimates
    monkeypatch.setenv(device.SLOW_BF16_OVERRIDE, "1")
    assert device.resolve("cpu", "bfloat16").dtype == "bfloat16"


def test_bf16_on_a_cpu_with_bf16_instructions_runs(monkeypatch):
    monkeypatch.setattr(device, "cpu_has_bf16_instructions", lambda: True)
    monkeypatch.delenv(device.SLOW_BF16_OVERRIDE, raising=False)
    assert device.resolve("cpu", "bfloat16").dtype == "bfloat16"


def test_the_cpu_flags_are_read_from_proc_cpuinfo(tmp_path, monkeypatch):
    for flags, expected in (("fpu avx2 avx512bw", False), ("fpu avx2 avx512_bf16", True), ("fpu amx_bf16", True)):
        info = tmp_path / "cpuinfo"
        info.write_text(f"processor : 0\nflags\t\t: {flags}\n")
        real_open = open
        monkeypatch.setattr("builtins.open", lambda path, *a, **k: real_open(info if path == "/proc/cpuinfo" else path, *a, **k))
        device.cpu_has_bf16_instructions.cache_clear()
        try:
            assert device.cpu_has_bf16_instructions() is expected
        finally:
            monkeypatch.undo()
            device.cpu_has_bf16_instructions.cache_clear()


def test_compile_without_a_compiler_is_one_line(monkeypatch):
    monkeypatch.setattr(device.shutil, "which", lambda name: None)
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(ConfigError, match="needs a C\\+\\+ compiler"):
        device.check_compile("cpu")
    device.check_compile("cuda")  # CUDA's backend generates Triton, not C++


@pytest.mark.parametrize("flags,expected", [({"fpu", "avx2"}, "float32"), ({"avx512_bf16"}, "bfloat16"),
                                            ({"amx_bf16"}, "bfloat16"), (None, "float32")])
def test_the_quickstart_trains_in_bf16_only_where_the_flags_show_bf16_instructions(monkeypatch, flags, expected):
    monkeypatch.setattr(device, "_cpu_flags", lambda: flags)
    assert device.fastest_cpu_dtype() == expected
