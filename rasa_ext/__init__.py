"""Extensions loaded by Rasa itself (the Rasa venv) in the production profile.

endpoints.prod.yml names `rasa_ext.tracker_store.StrictSQLTrackerStore` and
credentials.prod.yml names `rasa_ext.channels.StrictRestInput`. Nothing in `bot/` or
`actions/` imports this package (it needs Rasa, which the app venv does not have).
"""
