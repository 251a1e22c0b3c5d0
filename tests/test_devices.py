import pytest
import torch

from bgbias.devices import resolve_device
from bgbias.errors import ConfigError


def test_auto_is_the_gpu_when_torch_sees_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda:1")


@pytest.mark.parametrize(
    ("name", "gpus", "message"),
    [
        ("tpu", 1, "device 'tpu' is not one of auto, cpu, cuda, cuda:N, mps"),
        ("cuda:x", 1, "device 'cuda:x' is not one of"),
        ("cuda:7", 2, "device 'cuda:7': this machine has 2 CUDA GPU"),
        ("cuda", 0, "device 'cuda': this machine has 0 CUDA GPU"),
    ],
)
def test_invalid_devices_get_a_one_line_error(monkeypatch, name, gpus, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    with pytest.raises(ConfigError, match=message) as caught:
        resolve_device(name)
    assert "\n" not in str(caught.value)
