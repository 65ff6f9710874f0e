"""Chat load benchmark: the full stack (web service + Rasa + actions) against bare Rasa.

    .venv-app/bin/python -m bench.chat_load [--quick]

Two load models, never mixed (with no think time, Little's law ties latency to the number
of conversations, so a latency target needs think time): realistic load (N conversations
that each wait 5-15 s between messages: p50/p95/p99 latency and errors) and saturation
(50 conversations with no think time: turns/s), each for the full stack and for bare Rasa.
Goals: realistic p95 <= 250 ms and p50 <= 1.3x bare Rasa's with no errors; saturation at
least 1.0x one bare Rasa process. `__main__.py` describes the method in full.
"""
