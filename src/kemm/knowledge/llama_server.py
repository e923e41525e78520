"""``python -m kemm.knowledge.llama_server ARGS``: llama-cpp-python's OpenAI-compatible server
(``python -m llama_cpp.server ARGS``, same arguments) with kemm's CPU-safe model loading
(:func:`kemm.knowledge.backends.llama_cpu_safe_defaults`), for machines whose CPU advertises AMX
that the virtual machine cannot run."""

from __future__ import annotations

from kemm.knowledge.backends import llama_cpu_safe_defaults


def main() -> None:
    from llama_cpp.server.__main__ import main as serve

    with llama_cpu_safe_defaults():
        serve()


if __name__ == "__main__":
    main()
