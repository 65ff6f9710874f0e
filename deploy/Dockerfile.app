# The product's own processes: web service (`python -m bot serve`), action server
# (`python -m actions.server`: rasa_sdk with the token check), actions load balancer (`python -m bot.balancer`), analytics
# consumer (`python -m bot analytics-consumer`), migrations (`python -m bot migrate`).
# Reference only (docs/deploy.md): nothing in the tests builds it.
FROM python:3.10-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PYTHONPATH=/app
WORKDIR /app
# The runtime packages only: the development tools (tests, lint, types) are in dev.txt.
COPY requirements/app.txt requirements/app.txt
RUN pip install --no-cache-dir -r requirements/app.txt
COPY bot bot
COPY actions actions
COPY migrations migrations
COPY alembic.ini alembic.ini
# The bot's fixed texts are domain.yml responses (bot/domain/texts.py reads them).
COPY domain.yml domain.yml
# PHOTO_DIR (issue #19): a named volume mounted on /data/photos starts owned by the user.
RUN useradd --system --uid 10001 shopbot \
 && mkdir -p /data/photos && chown shopbot /data/photos && chmod 700 /data/photos
USER shopbot
CMD ["python", "-m", "bot", "serve"]
