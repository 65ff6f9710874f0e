"""Extensions loaded by Rasa itself (the Rasa venv).

Every profile starts Rasa as `python -m rasa_ext run ...`: Rasa's own command line with the
behaviour-preserving speed-ups of `rasa_ext.speedups` installed first.

endpoints.prod.yml names `rasa_ext.tracker_store.StrictSQLTrackerStore`; credentials.yml and
credentials.prod.yml name `rasa_ext.channels.StrictRestInput` (the shared secret, no typed
intents). `python -m rasa_ext run` takes `--auth-token` from `RASA_TOKEN` in the environment. Nothing in `bot/` or
`actions/` imports this package (it needs Rasa, which the app venv does not have).
"""
