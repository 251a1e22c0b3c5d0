import pytest
import torch

from bgbias.device import DeviceError, resolve_device


def test_auto_is_the_gpu_when_torch_sees_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize(
    ("name", "gpus", "message"),
    [
        ("tpu", 1, "--device 'tpu': expected auto, cpu, cuda or cuda:N"),
        ("cuda:x", 1, "--device 'cuda:x': expected auto, cpu, cuda or cuda:N"),
        ("cuda:7", 2, r"--device cuda:7: no such GPU \(torch sees 2: cuda:0..1\)"),
        ("cuda", 0, "--device cuda: torch sees no CUDA GPU on this machine"),
    ],
)
def test_invalid_devices_get_a_one_line_error(monkeypatch, name, gpus, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    with pytest.raises(DeviceError, match=message) as caught:
        resolve_device(name)
    assert "\n" not in str(caught.value)
