"""The target contract: where a model runs. One adapter module per runtime.

The base classes own the public behaviour: the target name's options (declared by each adapter
in ``OPTIONS``, validated here), input checking and error wrapping. An adapter declares its
options and overrides ``unavailable_reason``, ``describe`` and ``_load`` (and its session's
``_run``); it never parses its own name or checks its own options.

Errors: ``TargetError`` is the runtime refusing or failing (a runtime finding);
``InvalidTargetError`` is bad input (unknown target, unknown option, bad value: exit 2, before
any check runs); ``AdapterError`` is an adapter breaking this contract (the adapter's bug, not
the runtime's finding).
"""

from __future__ import annotations

import abc
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

Outputs = list[tuple[str, np.ndarray]]


class TargetError(RuntimeError):
    """The runtime refused or failed: carries the runtime's own message."""


class TargetUnavailable(TargetError):
    """The runtime or device is not present here (a skip, not a failure)."""


class InvalidTargetError(TargetError):
    """Bad input: an unknown target, a malformed name, an unknown option or a bad value.

    Raised when the target is constructed, before any check runs; callers map it to exit 2.
    """


class AdapterError(TargetError):
    """The adapter broke the target contract (its bug, never the runtime's finding)."""


ARTIFACTS_ENV = "CONFORMANCE_ARTIFACTS_DIR"


def artifacts_dir(*parts: str) -> Path:
    """A folder where an adapter keeps what a user needs to act on a failure (a failing
    compiler input, a reproducer) after its own temporary folders are gone.

    ``$CONFORMANCE_ARTIFACTS_DIR`` when the run sets it (the run folder's artifacts), else
    ``<system temp>/conformance-artifacts``, which nothing deletes. Created on demand.
    """
    root = os.environ.get(ARTIFACTS_ENV) or str(
        Path(tempfile.gettempdir()) / "conformance-artifacts"
    )
    folder = Path(root, *parts)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# -- target names ---------------------------------------------------------------------------

_OPTION_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


@dataclass(frozen=True)
class TargetName:
    """A parsed target name: ``base[:key=value...]``, e.g. ``ort:cpu:opt=basic``."""

    raw: str  # as selected
    base: str  # the parts before the options, e.g. "ort:cpu"
    options: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def parts(self) -> tuple[str, ...]:
        """The base name's parts: ("ort", "cpu")."""
        return tuple(self.base.split(":"))


def parse_target_name(name: str) -> TargetName:
    """The one parser of target names: ``base[:base...][:key=value...]``.

    Raises InvalidTargetError on an empty name or part, a base part after an option, a
    malformed ``key=value`` or a duplicated option.
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidTargetError(f"target name {name!r} is empty; e.g. 'ort:cpu:opt=basic'")
    base: list[str] = []
    options: dict[str, str] = {}
    for part in name.split(":"):
        if not part:
            raise InvalidTargetError(
                f"target {name!r}: empty part between ':'; the form is base[:key=value...]"
            )
        if "=" not in part:
            if options:
                raise InvalidTargetError(
                    f"target {name!r}: {part!r} comes after an option; options go last"
                )
            base.append(part)
            continue
        key, value = part.split("=", 1)
        if not _OPTION_KEY.match(key) or not value:
            raise InvalidTargetError(
                f"target {name!r}: malformed option {part!r}; the form is key=value"
            )
        if key in options:
            raise InvalidTargetError(
                f"target {name!r}: option {key!r} is given twice; give each option once"
            )
        options[key] = value
    if not base:
        raise InvalidTargetError(f"target {name!r} has no base name before its options")
    return TargetName(name, ":".join(base), MappingProxyType(options))


# -- declared options -----------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One option a target accepts in its name (``key=value``), declared in ``OPTIONS``.

    ``type`` is ``str`` or ``int``; ``choices`` (strings) lists the allowed values, when only
    some are; ``minimum``/``maximum`` bound an int; ``pattern`` (a regex) bounds a free string.
    The parsed value (``int`` for int options) lands in ``Target.options[name]``; ``default``
    is used when the option is not given (``None``: not set, the runtime's own choice).
    """

    name: str
    type: type = str
    default: Any = None
    help: str = ""
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    pattern: str | None = None

    def __post_init__(self) -> None:
        # A declaration error is the adapter's, found when its module is imported.
        if not _OPTION_KEY.match(self.name):
            raise TypeError(f"Option name {self.name!r} must be a word like 'threads'")
        if self.type not in (int, str):
            raise TypeError(f"Option {self.name!r}: type must be int or str, not {self.type!r}")
        if self.choices and (
            self.type is not str or not all(isinstance(c, str) for c in self.choices)
        ):
            raise TypeError(f"Option {self.name!r}: choices are strings, of a str option")
        if self.default is not None and not isinstance(self.default, self.type):
            raise TypeError(f"Option {self.name!r}: default {self.default!r} is not {self.type}")
        if self.choices and self.default is not None and self.default not in self.choices:
            raise TypeError(f"Option {self.name!r}: default {self.default!r} is not a choice")

    def allowed(self) -> str:
        """What values are allowed, in words (for errors and the targets listing)."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.type is int:
            low = "" if self.minimum is None else f" from {self.minimum}"
            high = "" if self.maximum is None else f" to {self.maximum}"
            return f"a whole number{low}{high}"
        if self.pattern:
            return f"text matching {self.pattern}"
        return "any text"

    def parse(self, target: str, raw: str) -> Any:
        """The value of ``raw``, or InvalidTargetError naming the option and what is allowed."""

        def bad() -> InvalidTargetError:
            return InvalidTargetError(
                f"target {target!r}: option {self.name}={raw!r} is not allowed; "
                f"{self.name} must be {self.allowed()}"
            )

        if self.choices and raw not in self.choices:
            raise bad()
        if self.type is int:
            if not re.fullmatch(r"[0-9]{1,19}", raw):
                raise bad()
            value = int(raw)
            if (self.minimum is not None and value < self.minimum) or (
                self.maximum is not None and value > self.maximum
            ):
                raise bad()
            return value
        if self.pattern and not re.fullmatch(self.pattern, raw):
            raise bad()
        return raw


def validate_options(
    target: str, declared: tuple[Option, ...], given: Mapping[str, str]
) -> dict[str, Any]:
    """Every declared option's value (given or default); InvalidTargetError on any other."""
    known = {option.name: option for option in declared}
    unknown = sorted(set(given) - set(known))
    if unknown:
        base = parse_target_name(target).base if target else target
        if known:
            listed = "; ".join(f"{o.name} ({o.allowed()})" for o in declared)
            raise InvalidTargetError(
                f"target {target!r}: unknown options {unknown}; known: {listed}"
            )
        raise InvalidTargetError(
            f"target {target!r}: unknown options {unknown}; {base} takes no options"
        )
    return {
        option.name: option.parse(target, given[option.name])
        if option.name in given
        else option.default
        for option in declared
    }


@dataclass(frozen=True)
class TargetInfo:
    """What a target is, as recorded in the results and the bundle (``Target.describe()``).

    Positional order: ``TargetInfo(name, runtime, version, device, options, deterministic)``.
    """

    name: str  # the target's name as selected, e.g. "ort:cpu:opt=disabled" (Target.name)
    runtime: str  # the runtime's own name, e.g. "onnxruntime"
    version: str  # the runtime's version, e.g. "1.20.1"
    device: str  # what it runs on, e.g. "cpu", "cuda", "npu"
    options: dict[str, Any] = field(default_factory=dict)  # everything that changes numerics
    deterministic: bool = True  # False: repeated runs may differ (then held to the tolerance)


class Session(abc.ABC):
    """A model loaded on a target. A subclass calls ``super().__init__(input_names)``."""

    def __init__(self, input_names: list[str]) -> None:
        self.input_names = list(input_names)

    def run(self, inputs: dict[str, np.ndarray]) -> Outputs:
        input_names = getattr(self, "input_names", None)
        if input_names is None:
            raise AdapterError(
                f"{type(self).__module__}.{type(self).__qualname__}.__init__ did not call "
                "super().__init__(input_names): the session does not know its inputs"
            )
        missing = [name for name in input_names if name not in inputs]
        if missing:
            raise TargetError(f"inputs missing: {', '.join(missing)}")
        try:
            outputs = self._run(inputs)
        except TargetError:
            raise
        except Exception as error:
            raise TargetError(f"{type(error).__name__}: {error}") from error
        return self._checked(outputs)

    def _checked(self, outputs: object) -> Outputs:
        where = f"{type(self).__module__}.{type(self).__qualname__}._run"
        if not isinstance(outputs, (list, tuple)):
            raise AdapterError(
                f"{where} returned {type(outputs).__name__}; it must return a list of "
                "(output name, numpy array), one per graph output in graph order"
            )
        for item in outputs:
            if not (
                isinstance(item, tuple)
                and len(item) == 2
                and isinstance(item[0], str)
                and isinstance(item[1], np.ndarray)
            ):
                raise AdapterError(
                    f"{where} returned an item of type {type(item).__name__}; each item must "
                    "be a tuple (output name: str, numpy.ndarray)"
                )
        return list(outputs)

    @abc.abstractmethod
    def _run(self, inputs: dict[str, np.ndarray]) -> Outputs: ...

    def load_facts(self) -> dict[str, Any]:
        """What the load did that a check record should say, JSON-able: e.g.
        ``{"compile_cache": "hit"}`` when the compiled model came from the compile cache."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


class Target(abc.ABC):
    """Where a model runs. Constructed as ``Target(name)`` (or ``(name, options)``).

    ``OPTIONS`` declares every option the target's name may carry; the base class parses and
    validates them (InvalidTargetError otherwise) into ``self.options``: every declared option,
    given or default, parsed to its type. ``self.name`` is the name as selected,
    ``self.base_name`` its part before the options (e.g. "ort:cpu").
    """

    OPTIONS: ClassVar[tuple[Option, ...]] = ()

    def __init__(self, name: str, options: Mapping[str, str] | None = None) -> None:
        parsed = parse_target_name(name)
        self.name = name
        self.base_name = parsed.base
        self.options: dict[str, Any] = validate_options(
            name, self.OPTIONS, parsed.options if options is None else options
        )

    @property
    def borrowed_test_data(self) -> str | None:
        """The exporter whose test data this target borrows (a native target), else None."""
        return None

    @abc.abstractmethod
    def unavailable_reason(self) -> str | None:
        """None when the runtime can be used here, else why not (missing package, device)."""

    def availability(self) -> str | None:
        """``unavailable_reason()``, asked once per target object: it may import a runtime or
        probe a device, and a run asks when choosing, describing and at every load."""
        memo = self.__dict__.get("_availability_memo", self)
        if memo is self:
            memo = self.unavailable_reason()
            self.__dict__["_availability_memo"] = memo
        return memo

    @abc.abstractmethod
    def describe(self) -> TargetInfo: ...

    def info(self) -> TargetInfo:
        """``describe()``, checked: an AdapterError when the adapter breaks the contract."""
        where = f"{type(self).__module__}.{type(self).__qualname__}.describe"
        try:
            info = self.describe()
        except TargetError:
            raise
        except (TypeError, AttributeError, NameError) as error:
            raise AdapterError(
                f"{where} failed: {type(error).__name__}: {error} (TargetInfo takes name, "
                "runtime, version, device, then optionally options and deterministic)"
            ) from error
        except Exception as error:
            raise TargetError(f"{type(error).__name__}: {error}") from error
        if not isinstance(info, TargetInfo):
            raise AdapterError(f"{where} returned {type(info).__name__}, not a TargetInfo")
        for key in ("runtime", "version", "device"):
            if not isinstance(getattr(info, key), str) or not getattr(info, key):
                raise AdapterError(f"{where}: TargetInfo.{key} must be a non-empty string")
        if info.name != self.name:
            raise AdapterError(
                f"{where}: TargetInfo.name is {info.name!r}; it must be the target's name "
                f"as selected ({self.name!r}, i.e. self.name)"
            )
        if not isinstance(info.options, dict):
            raise AdapterError(f"{where}: TargetInfo.options must be a dict")
        return info

    def load(self, model_path: Path) -> Session:
        reason = self.availability()
        if reason:
            raise TargetUnavailable(reason)
        try:
            session = self._load(model_path)
        except TargetError:
            raise
        except Exception as error:
            raise TargetError(f"{type(error).__name__}: {error}") from error
        if not isinstance(session, Session):
            raise AdapterError(
                f"{type(self).__module__}.{type(self).__qualname__}._load returned "
                f"{type(session).__name__}; it must return a Session subclass's instance"
            )
        return session

    @abc.abstractmethod
    def _load(self, model_path: Path) -> Session: ...
