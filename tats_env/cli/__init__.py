"""The installed commands of the environment library: ``tats-export``, ``tats-finetune``, ``tats-eval``.

Each module's ``main(argv=None, prog=None)`` parses its config dataclass (``--help`` needs only the
config modules, which import no torch) and imports the heavy code after parsing. The scripts in
``experiments/`` call the same ``main`` with their own name for the error lines.
"""
