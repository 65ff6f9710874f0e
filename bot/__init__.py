"""Feedback chatbot for online shops: domain, storage and web service (no Rasa imports)."""
