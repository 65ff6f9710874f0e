"""The aiohttp web service: chat page, chat WebSocket relay to Rasa, health."""
