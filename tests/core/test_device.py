"""One precision vocabulary: every old spelling normalises to one enum; devices resolve in one place."""

from __future__ import annotations

import pytest

from core.device import (
    AUTOCAST_PRECISIONS,
    LOAD_PRECISIONS,
    Precision,
    autocast_bf16,
    bf16_is_fast,
    quantize_linear,
    resolve_device,
)
from core.errors import DeviceUnavailableError, InputError


@pytest.mark.parametrize("spelling, expected", [
    ("bf16", Precision.BFLOAT16), ("bfloat16", Precision.BFLOAT16), ("BF16", Precision.BFLOAT16),
    ("torch.bfloat16", Precision.BFLOAT16), ("fp32", Precision.FLOAT32), ("float32", Precision.FLOAT32),
    ("fp16", Precision.FLOAT16), ("half", Precision.FLOAT16), (" auto ", Precision.AUTO), (None, Precision.AUTO),
    ("int8", Precision.INT8), (Precision.INT8, Precision.INT8),
])
def test_every_spelling_policies_use_is_one_precision(spelling, expected):
    assert Precision.parse(spelling) is expected


def test_torch_dtypes_are_accepted_and_given_back():
    import torch

    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        assert Precision.parse(dtype).torch_dtype() is dtype
    with pytest.raises(InputError, match="not one torch dtype"):
        Precision.AUTO.torch_dtype()


def test_unknown_or_unsupported_precisions_name_the_choices():
    with pytest.raises(InputError, match=r"one of auto, float32 \(fp32\), bfloat16 \(bf16\), int8, got 'fp16'"):
        Precision.parse("fp16", allowed=AUTOCAST_PRECISIONS)
    with pytest.raises(InputError, match="got 'int8'"):
        Precision.parse("int8", allowed=LOAD_PRECISIONS)
    with pytest.raises(ValueError, match="got 'double'"):  # an InputError is a ValueError, as before
        Precision.parse("double")


def test_the_enum_is_its_string():
    assert Precision.BFLOAT16 == "bfloat16" and str(Precision.BFLOAT16) == "bfloat16" and f"{Precision.INT8}" == "int8"


def test_autocast_follows_the_precision_and_auto_follows_the_hardware():
    import torch

    cpu = torch.device("cpu")
    assert autocast_bf16(cpu, "bf16") and not autocast_bf16(cpu, "fp32") and not autocast_bf16(cpu, "int8")
    assert autocast_bf16(cpu, "auto") == bf16_is_fast(cpu) == bf16_is_fast("cpu")
    assert not bf16_is_fast("meta")


def test_devices_resolve_in_one_place():
    import torch

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(InputError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailableError, match="CUDA is not available") as caught:
            resolve_device("cuda:1")
        assert isinstance(caught.value, RuntimeError)


def test_int8_quantises_linear_layers_on_the_cpu_only():
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)).eval()
    quantised = quantize_linear(model, torch.device("cpu"))
    assert "quantized" in type(quantised[0]).__module__
    x = torch.randn(3, 8, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(quantised(x), model(x), atol=0.05)
    with pytest.raises(InputError, match="CPU only"):
        quantize_linear(model, "meta")


def test_torch_stays_unimported_until_asked_for():
    import subprocess
    import sys

    code = "import sys, core.device; core.device.Precision.parse('bf16'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
