"""Chat load benchmark: the full stack (web service + Rasa + actions) against bare Rasa.

    .venv-app/bin/python -m bench.chat_load [--quick]

Method: /work/shared/BENCHMARKS.md ("Chat load: two load models, never mixed").
"""
