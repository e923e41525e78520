"""LLM backends behind one interface.

- :class:`LlamaCppBackend`: embedded llama.cpp (``llama-cpp-python``) on a local GGUF file; the
  chat template comes from the file's metadata.
- :class:`OpenAICompatibleBackend`: any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, a
  llama.cpp server) through the ``openai`` client: base URL and model from config, API key read
  from an environment variable (never logged or stored in reprs), request timeout, retries with
  exponential backoff and jitter, bounded concurrency.
- :class:`ExtractiveBackend`: no LLM; answers the refine prompt with the rule-based extraction of
  the delimited report (offline and fast runs, and a check on the LLM).
"""

from __future__ import annotations

import abc
import contextlib
import logging
import os
import random
import re
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kemm.errors import ConfigError, KemmError

__all__ = [
    "BACKEND_KINDS",
    "ExtractiveBackend",
    "LLMBackend",
    "LLMError",
    "LlamaCppBackend",
    "OpenAICompatibleBackend",
    "create_backend",
]

log = logging.getLogger(__name__)

Message = Mapping[str, str]


class LLMError(KemmError, RuntimeError):
    """An LLM call failed (after retries, where the backend retries)."""


class LLMBackend(abc.ABC):
    """What refinement, fact filling and PBK generation need from a backend: ``complete``.

    A backend implements :meth:`_reply`; any object with a ``complete`` method of this signature
    (a test double, a user's own client) can stand in for one.
    """

    name: str
    model: str
    concurrency: int
    calls: int

    def complete(
        self,
        messages: list[Message],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        seed: int = 0,
        json_schema: Mapping[str, Any] | None = None,
    ) -> str:
        """The assistant's reply to ``messages``; with ``json_schema``, JSON valid under it."""
        request = {
            "messages": [dict(m) for m in messages],
            "max_tokens": max_tokens,
            "temperature": temperature,
            "seed": seed,
        }
        return self._reply(request, json_schema)

    @abc.abstractmethod
    def _reply(self, request: dict[str, Any], json_schema: Mapping[str, Any] | None) -> str:
        """The reply to one chat-completion request (messages, max_tokens, temperature, seed)."""


_LLAMA_LOAD_LOCK = threading.Lock()


@contextlib.contextmanager
def llama_cpu_safe_defaults():
    """While active, llama.cpp models load without the extra CPU buffer types (AMX / repacked
    weights) when the CPU advertises AMX: in virtual machines that do not give the guest AMX
    tile state (e.g. Firecracker), the AMX matmul faults (SIGSEGV in ``ldtilecfg``).
    ``KEMM_LLAMA_EXTRA_BUFTS=1`` keeps them, ``=0`` always drops them."""
    setting = os.environ.get("KEMM_LLAMA_EXTRA_BUFTS", "")
    drop_extra = setting == "0" or (setting != "1" and _cpu_advertises_amx())
    if not drop_extra:
        yield
        return
    import llama_cpp.llama as llama_module

    with _LLAMA_LOAD_LOCK:
        params = llama_module.llama_cpp
        original = params.llama_model_default_params

        def no_extra_bufts():  # type: ignore[no-untyped-def]
            p = original()
            if hasattr(p, "use_extra_bufts"):
                p.use_extra_bufts = False
            return p

        params.llama_model_default_params = no_extra_bufts
        try:
            yield
        finally:
            params.llama_model_default_params = original


def _cpu_advertises_amx() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            return "amx_tile" in handle.read(200_000)
    except OSError:
        return False


class LlamaCppBackend(LLMBackend):
    """Embedded llama.cpp on a local GGUF file (loaded lazily, one call at a time)."""

    name = "llama_cpp"

    def __init__(
        self,
        gguf_path: str | os.PathLike[str] | None = None,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_batch: int = 512,
        verbose: bool = False,
    ):
        from kemm.knowledge.model_files import check_gguf, locate_gguf

        self.gguf_path = check_gguf(gguf_path) if gguf_path else locate_gguf()
        self.model = self.gguf_path.name
        self.n_ctx = n_ctx
        self.n_threads = n_threads or max(1, os.cpu_count() or 1)
        self.n_batch = n_batch
        self.verbose = verbose
        self.concurrency = 1
        self.calls = 0
        self._llm: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        """The ``llama_cpp.Llama``, loaded without llama.cpp's extra CPU buffer types (AMX /
        repacked weights) when the CPU advertises AMX: in virtual machines that do not give the
        guest AMX tile state (e.g. Firecracker), the AMX matmul faults (SIGSEGV in
        ``ldtilecfg``). ``KEMM_LLAMA_EXTRA_BUFTS=1`` keeps them, ``=0`` always drops them."""
        if self._llm is None:
            try:
                from llama_cpp import Llama
            except ImportError as error:  # pragma: no cover - depends on the environment
                raise ConfigError(
                    "the embedded backend needs llama-cpp-python: pip install 'kemm[llm]'"
                ) from error
            with llama_cpu_safe_defaults():
                self._llm = Llama(
                    model_path=str(self.gguf_path),
                    n_ctx=self.n_ctx,
                    n_threads=self.n_threads,
                    n_batch=self.n_batch,
                    seed=0,
                    verbose=self.verbose,
                )
        return self._llm

    def _reply(self, request: dict[str, Any], json_schema: Mapping[str, Any] | None) -> str:
        """With ``json_schema``, llama.cpp compiles the schema into a grammar."""
        extra = (
            {"response_format": {"type": "json_object", "schema": dict(json_schema)}}
            if json_schema
            else {}
        )
        with self._lock:
            llm = self._load()
            self.calls += 1
            try:
                out = llm.create_chat_completion(**request, **extra)
            except Exception as error:  # llama.cpp raises plain ValueError/RuntimeError
                raise LLMError(f"llama.cpp completion failed: {error}") from error
        return out["choices"][0]["message"]["content"] or ""

    def __repr__(self) -> str:
        return f"LlamaCppBackend(gguf_path={str(self.gguf_path)!r}, n_ctx={self.n_ctx})"


class EndpointUnreachable(LLMError):
    """The endpoint never answered: several requests in a row could not connect or timed out.
    Not a per-report failure, so a run stops instead of waiting out every report."""


# Structured-output formats, tried in order; a server refusing one (HTTP 400/422) gets the next.
JSON_MODES = ("json_schema", "json_object_schema", "json_object")


def _response_format(mode: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    if mode == "json_schema":  # OpenAI structured output, vLLM, recent llama.cpp servers
        return {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": dict(schema), "strict": True},
        }
    if mode == "json_object_schema":  # llama-cpp-python's server (a grammar from the schema)
        return {"type": "json_object", "schema": dict(schema)}
    return {"type": "json_object"}  # any JSON; the schema is only in the prompt


class OpenAICompatibleBackend(LLMBackend):
    """Any OpenAI-compatible chat-completions endpoint.

    Transient errors are retried with exponential backoff. An endpoint that has never answered
    and fails ``unreachable_after`` requests in a row (cannot connect, or times out) raises
    :class:`EndpointUnreachable` for every further request at once.
    """

    name = "openai"
    unreachable_after = 3

    def __init__(
        self,
        base_url: str | None,
        model: str,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 120.0,
        max_retries: int = 4,
        concurrency: int = 4,
        backoff_base: float = 1.0,
        backoff_max: float = 30.0,
    ):
        try:
            import openai
        except ImportError as error:  # pragma: no cover - openai is a core dependency
            raise ConfigError("the openai backend needs the openai package") from error
        if not model:
            raise ConfigError("the openai backend needs a model name (--model)")
        if not timeout > 0 or max_retries < 0:
            raise ConfigError(
                f"the openai backend needs --timeout > 0 and --max-retries ≥ 0 "
                f"(got {timeout:g} and {max_retries})"
            )
        self.base_url = base_url
        self.model = model
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.max_retries = max_retries
        self.concurrency = max(1, int(concurrency))
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.calls = 0
        self._semaphore = threading.BoundedSemaphore(self.concurrency)
        self._count_lock = threading.Lock()
        self._json_mode = JSON_MODES[0]  # the structured-output format the server accepts
        self._answered = False
        self._down_in_a_row = 0
        self._unreachable: str | None = None
        # Local servers (llama.cpp, vLLM, Ollama) accept any key; the real key stays in the env.
        key = os.environ.get(api_key_env) or "not-needed"
        self._openai = openai
        self._client = openai.OpenAI(base_url=base_url, api_key=key, timeout=timeout, max_retries=0)

    def _retryable(self, error: Exception) -> bool:
        o = self._openai
        if isinstance(error, (o.APIConnectionError, o.APITimeoutError, o.RateLimitError)):
            return True
        if isinstance(error, o.APIStatusError):
            return error.status_code in (408, 409, 429) or error.status_code >= 500
        return False

    def _delay(self, attempt: int) -> float:
        return min(self.backoff_max, self.backoff_base * 2**attempt) * (0.5 + random.random() / 2)

    def _reply(self, request: dict[str, Any], json_schema: Mapping[str, Any] | None) -> str:
        """With ``json_schema``, structured output (json_schema, else json_object
        with the schema, else any JSON object: the format the server accepts is remembered)."""
        if self._unreachable:
            raise EndpointUnreachable(self._unreachable)
        last: Exception | None = None
        attempt = 0
        with self._semaphore:
            while True:
                with self._count_lock:
                    self.calls += 1
                extra = {}
                if json_schema is not None:
                    extra["response_format"] = _response_format(self._json_mode, json_schema)
                try:
                    response = self._client.chat.completions.create(
                        model=self.model, **request, **extra
                    )
                    with self._count_lock:
                        self._answered, self._down_in_a_row = True, 0
                    return response.choices[0].message.content or ""
                except Exception as error:
                    last = error
                    if json_schema is not None and self._refused_format(error):
                        continue  # not a retry: the same request in the next format
                    if not self._retryable(error) or attempt == self.max_retries:
                        break
                    delay = self._delay(attempt)
                    log.warning(
                        "%s %s: %s (attempt %d/%d), retrying in %.1fs",
                        self.base_url or "openai",
                        self.model,
                        type(error).__name__,
                        attempt + 1,
                        self.max_retries + 1,
                        delay,
                    )
                    time.sleep(delay)
                    attempt += 1
        message = self._failure(last, attempt + 1)
        o = self._openai
        if isinstance(last, (o.APIConnectionError, o.APITimeoutError)) and not self._answered:
            with self._count_lock:
                self._down_in_a_row += 1
                if self._down_in_a_row >= self.unreachable_after and not self._answered:
                    self._unreachable = (
                        f"LLM endpoint unreachable: {self._down_in_a_row} requests in a row "
                        f"failed, the last with {message}"
                    )
            if self._unreachable:
                raise EndpointUnreachable(self._unreachable)
        raise LLMError(message)

    def _refused_format(self, error: Exception) -> bool:
        """A server refusing the structured-output format (HTTP 400/422, or llama-cpp-python's
        server, whose request validation answers 500 naming ``response_format``) steps down to
        the next one; False when there is none left."""
        o = self._openai
        refused = isinstance(error, o.APIStatusError) and (
            error.status_code in (400, 422)
            or (error.status_code == 500 and "response_format" in str(error))
        )
        with self._count_lock:
            if not refused or self._json_mode == JSON_MODES[-1]:
                return False
            fallback = JSON_MODES[JSON_MODES.index(self._json_mode) + 1]
            log.warning("%s refused response_format %s (HTTP %s); trying %s",
                        self.base_url or "openai", self._json_mode, error.status_code, fallback)  # fmt: skip
            self._json_mode = fallback
        return True

    def _failure(self, error: Exception | None, attempts: int) -> str:
        """One line: the endpoint, the model, what went wrong, after how many attempts."""
        where = f"{self.base_url or 'openai'} (model {self.model!r})"
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        if isinstance(error, self._openai.APITimeoutError):
            return (
                f"{where}: APITimeoutError: no answer within the {self.timeout:g} s timeout "
                f"(--timeout), {tries}"
            )
        if isinstance(error, self._openai.APIConnectionError):
            return f"{where}: APIConnectionError: cannot connect (is the server up?), {tries}"
        text = " ".join(str(error).split())
        key = str(getattr(self._client, "api_key", "") or "")
        if len(key) >= 6 and key != "not-needed":  # a server may echo the key in its error body
            text = text.replace(key, "***")
        return f"{where}: {type(error).__name__}: {text}, {tries}"

    def __repr__(self) -> str:  # the key itself is never shown
        return (
            f"OpenAICompatibleBackend(base_url={self.base_url!r}, model={self.model!r}, "
            f"api_key_env={self.api_key_env!r}, timeout={self.timeout}, "
            f"max_retries={self.max_retries}, concurrency={self.concurrency})"
        )


class ExtractiveBackend(LLMBackend):
    """Rule-based extraction behind the LLM interface (no model, no network)."""

    name = "extractive"
    model = "rules-v1"

    def __init__(self, concurrency: int = 1):
        self.concurrency = concurrency
        self.calls = 0

    def _reply(self, request: dict[str, Any], json_schema: Mapping[str, Any] | None) -> str:
        """The rule-based statements of the report in the refine prompt."""
        from kemm.knowledge.extractive import refine_extractive

        if json_schema is not None:
            raise ConfigError("the extractive backend answers no JSON schema; choose an LLM")
        self.calls += 1
        messages = request["messages"]
        user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        m = re.search(r"<report>\n?(.*)\n?</report>", user, re.DOTALL)
        text = m.group(1) if m else user
        n = re.search(r"at most (\d+)", user)
        max_statements = int(n.group(1)) if n else 12
        return "\n".join(f"- {s}" for s in refine_extractive(text, max_statements))

    def __repr__(self) -> str:
        return "ExtractiveBackend()"


BACKEND_KINDS = ("extractive", "llama_cpp", "openai")
_ALIASES = {
    "llama_cpp": ("embedded", "llama", "llamacpp", "llama-cpp", "gguf"),
    "openai": ("openai-compatible", "openai_compatible", "vllm", "ollama", "server"),
    "extractive": ("rules",),
}


def backend_kind(name: str) -> str:
    """The backend kind a name or alias stands for (``vllm`` -> ``openai``); other names as
    given, lower-cased."""
    name = name.lower()
    return next((kind for kind, aliases in _ALIASES.items() if name in aliases), name)


def create_backend(config: Mapping[str, Any] | str) -> LLMBackend:
    """A backend from a config mapping (``{"kind": ..., ...}``) or a kind name.

    Keys: ``kind`` (extractive | llama_cpp | openai); llama_cpp: ``gguf_path``, ``n_ctx``,
    ``n_threads``; openai: ``base_url``, ``model``, ``api_key_env``, ``timeout``,
    ``max_retries``, ``concurrency``.
    """
    cfg: dict[str, Any] = {"kind": config} if isinstance(config, str) else dict(config)
    kind = backend_kind(str(cfg.pop("kind", cfg.pop("backend", "extractive"))))
    cfg = {k: v for k, v in cfg.items() if v is not None}
    if kind == "extractive":
        return ExtractiveBackend()
    if kind == "llama_cpp":
        allowed = {"gguf_path", "n_ctx", "n_threads", "n_batch", "verbose"}
        _check_keys(kind, cfg, allowed)
        if "gguf_path" in cfg:
            cfg["gguf_path"] = Path(cfg["gguf_path"])
        return LlamaCppBackend(**cfg)
    if kind == "openai":
        allowed = {"base_url", "model", "api_key_env", "timeout", "max_retries", "concurrency"}
        _check_keys(kind, cfg, allowed)
        if "model" not in cfg:
            raise ConfigError("the openai backend needs 'model'")
        return OpenAICompatibleBackend(cfg.pop("base_url", None), cfg.pop("model"), **cfg)
    raise ConfigError(f"unknown LLM backend {kind!r}; choose one of {', '.join(BACKEND_KINDS)}")


def _check_keys(kind: str, cfg: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(cfg) - allowed)
    if unknown:
        raise ConfigError(
            f"unknown option(s) {unknown} for the {kind} backend; allowed: {sorted(allowed)}"
        )
