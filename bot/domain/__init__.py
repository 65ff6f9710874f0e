"""Domain rules: lifecycles, surveys, feedback, escalations, support flows (no Rasa, no web)."""
