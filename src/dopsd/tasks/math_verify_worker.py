"""A child process that judges mathematical equivalence with math-verify, one JSON request per line.

It runs as a plain script (it imports nothing from dopsd, so it starts in about a second) and answers on stdout:
first ``{"ready": true}`` (or ``{"error": ...}`` when math-verify is missing), then ``true``/``false`` for each
``[reference, answer]`` line it reads. Running in its own main thread, it can use math-verify's signal timeouts;
the parent kills it when even those do not stop a computation (big integers in C code ignore signals).
"""

import functools
import json
import sys


def main() -> None:
    protocol, sys.stdout = sys.stdout, sys.stderr  # stray prints must not corrupt the protocol
    timeout = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    try:
        from math_verify import parse, verify
    except ImportError as error:
        print(json.dumps({"error": f"math-verify is not installed ({error})"}), file=protocol, flush=True)
        return

    @functools.lru_cache(maxsize=4096)
    def parsed(latex: str) -> tuple:
        return tuple(parse(f"\\boxed{{{latex}}}", parsing_timeout=timeout))

    def equivalent(reference: str, answer: str) -> bool:
        gold, predicted = parsed(reference), parsed(answer)
        return bool(gold and predicted and verify(list(gold), list(predicted), timeout_seconds=timeout))

    print(json.dumps({"ready": True}), file=protocol, flush=True)
    for line in iter(sys.stdin.readline, ""):
        try:
            reference, answer = json.loads(line)
            result = equivalent(str(reference), str(answer))
        except Exception:  # noqa: BLE001  (any failure on untrusted input means "not equivalent")
            result = False
        print(json.dumps(result), file=protocol, flush=True)


if __name__ == "__main__":
    main()
