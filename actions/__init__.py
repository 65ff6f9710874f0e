"""Rasa SDK actions: thin adapters between tracker state and the domain layer in `bot/`."""
